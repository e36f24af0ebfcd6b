"""Counters, latency samples and a per-second time series. No printing here.

The runner calls ``observe_*``; the report layer and the controller read.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ._types import FailureKind

__all__ = ["Metrics", "percentile"]


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0–100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(slots=True)
class Metrics:
    """What happened during a run, counted as it happens."""

    clock: Callable[[], float] = time.monotonic
    started: float = 0.0
    finished: float | None = None
    requests: int = 0
    requests_ok: int = 0
    requests_failed: Counter[str] = field(default_factory=Counter)
    items_total: int = 0
    items_ok: int = 0
    items_failed: Counter[str] = field(default_factory=Counter)
    items_cached: int = 0
    items_skipped: int = 0
    items_ok_first_try: int = 0
    items_first_tried: int = 0
    """Items whose first request ended this run (answered or not): first-try success's base."""
    retries: int = 0
    splits: int = 0
    flex_fallbacks: int = 0
    """``--mode flex``: records sent again at the default tier after ``--flex-deadline``."""
    rate_limited: int = 0
    timeouts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cost: float = 0.0
    unpriced_requests: int = 0
    latencies: list[float] = field(default_factory=list)
    pack_size: int = 0
    """The pack size the controller is using now (a gauge, for progress)."""
    concurrency: int = 0
    """The concurrency limit now (a gauge)."""
    budget: float | None = None
    """``--max-cost``: the most the job may spend over all its runs (USD)."""
    spent_before: float = 0.0
    """What the job's earlier runs paid (USD, from its store): counted against the budget."""
    by_model: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per model of a cascade: requests, records answered, cost."""
    pack_sizes: Counter[int] = field(default_factory=Counter)
    series: dict[int, dict[str, float]] = field(default_factory=dict)
    done_at_start: int = 0
    """Items already ``done`` or ``failed`` when the run started (a resumed job)."""

    def merge(self, part: Metrics) -> None:
        """Add another worker's metrics of the same run (a Ray block's) to these.

        Every count is summed, counters and per-model figures added, latency samples
        pooled; a field added to the class is summed unless it is named in ``_OWN``.
        Times, the budget and the per-second series stay this object's: blocks overlap,
        so only the driver knows the run's span. Gauges take the part's when it has one.
        """
        for name in _MERGED:
            mine, theirs = getattr(self, name), getattr(part, name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            elif isinstance(mine, list):
                mine.extend(theirs)
            elif isinstance(mine, dict):
                for model, figures in theirs.items():
                    into = mine.setdefault(model, {})
                    for key, value in figures.items():
                        into[key] = into.get(key, 0) + value
            else:
                setattr(self, name, mine + theirs)
        for gauge in _GAUGES:
            setattr(self, gauge, getattr(part, gauge) or getattr(self, gauge))

    def start(self) -> None:
        self.started = self.clock()
        self.done_at_start = self.items_ok + self.items_failed_total

    def finish(self) -> None:
        self.finished = self.clock()

    def _bucket(self) -> dict[str, float]:
        second = int(self.clock() - self.started)
        bucket = self.series.get(second)
        if bucket is None:
            bucket = self.series[second] = {}
        return bucket

    def observe_request(
        self,
        *,
        size: int,
        latency: float,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int,
        cost: float | None,
        concurrency: int,
        cache_write_tokens: int = 0,
    ) -> None:
        self.requests += 1
        self.requests_ok += 1
        self.latencies.append(latency)
        self.pack_sizes[size] += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cached_tokens += cached_tokens
        self.cache_write_tokens += cache_write_tokens
        if cost is None:
            self.unpriced_requests += 1
        else:
            self.cost += cost
        bucket = self._bucket()
        bucket["requests"] = bucket.get("requests", 0) + 1
        bucket["latency_sum"] = bucket.get("latency_sum", 0.0) + latency
        bucket["pack_size_sum"] = bucket.get("pack_size_sum", 0) + size
        bucket["concurrency"] = concurrency
        bucket["cost"] = self.cost

    def observe_error(
        self, kind: str, *, size: int = 0, first_tries: int = 0, cost: float | None = None
    ) -> None:
        self.requests += 1
        self.items_first_tried += first_tries
        if size:
            self.pack_sizes[size] += 1
        self.requests_failed[kind] += 1
        if cost is not None:
            self.cost += cost
        if kind == "rate_limited":
            self.rate_limited += 1
        elif kind == "timeout":
            self.timeouts += 1
        bucket = self._bucket()
        bucket["errors"] = bucket.get("errors", 0) + 1

    def observe_items(
        self, *, ok: int = 0, ok_first_try: int = 0, first_tries: int = 0, retried: int = 0
    ) -> None:
        self.items_ok += ok
        self.items_ok_first_try += ok_first_try
        self.items_first_tried += first_tries
        self.retries += retried
        if ok:
            bucket = self._bucket()
            bucket["items"] = bucket.get("items", 0) + ok

    def observe_model(self, model: str, *, ok: int, cost: float | None) -> None:
        entry = self.by_model.setdefault(model, {"requests": 0, "records": 0, "cost": 0.0})
        entry["requests"] += 1
        entry["records"] += ok
        entry["cost"] += cost or 0.0

    def observe_failed(self, kind: str, count: int = 1) -> None:
        self.items_failed[kind] += count

    # -- derived -----------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else self.clock()
        return max(1e-9, end - self.started)

    @property
    def items_failed_total(self) -> int:
        return sum(self.items_failed.values())

    def summary(self) -> dict[str, Any]:
        """The final metrics as plain data (for the table, JSON and tests)."""
        processed = self.items_ok + self.items_failed_total
        # Throughput and cost per item are about this run: a resumed job's earlier
        # items took no time and no money now.
        this_run = max(0, processed - self.done_at_start)
        return {
            "items_total": self.items_total,
            "items_ok": self.items_ok,
            "items_failed": self.items_failed_total,
            "failed_by_kind": dict(self.items_failed),
            "items_cached": self.items_cached,
            "items_skipped": self.items_skipped,
            "item_success_rate": self.items_ok / processed if processed else None,
            "first_try_rate": (
                self.items_ok_first_try / self.items_first_tried if self.items_first_tried else None
            ),
            "requests": self.requests,
            "requests_ok": self.requests_ok,
            "requests_failed_by_kind": dict(self.requests_failed),
            "batch_success_rate": self.requests_ok / self.requests if self.requests else None,
            "elapsed_s": self.elapsed,
            "items_this_run": this_run,
            "items_per_min": this_run / self.elapsed * 60,
            "latency_mean_s": sum(self.latencies) / len(self.latencies) if self.latencies else None,
            "latency_p50_s": percentile(self.latencies, 50),
            "latency_p95_s": percentile(self.latencies, 95),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cost_usd": None if self.unpriced_requests else self.cost,
            "budget_usd": self.budget,
            "job_cost_usd": None if self.unpriced_requests else self.spent_before + self.cost,
            "cost_per_item_usd": (None if self.unpriced_requests or not this_run else self.cost / this_run),
            "retries": self.retries,
            "splits": self.splits,
            "flex_unavailable": self.requests_failed.get(FailureKind.UNAVAILABLE, 0),
            "flex_fallbacks": self.flex_fallbacks,
            "rate_limited": self.rate_limited,
            "timeouts": self.timeouts,
            "by_model": {model: dict(entry) for model, entry in self.by_model.items()},
            "mean_pack_size": (
                sum(k * v for k, v in self.pack_sizes.items()) / sum(self.pack_sizes.values())
                if self.pack_sizes
                else None
            ),
        }


_GAUGES = ("pack_size", "concurrency")
_OWN = frozenset({"clock", "started", "finished", "budget", "spent_before", "series", *_GAUGES})
"""Fields ``merge`` does not add up: the run's span and budget, and the gauges."""
_MERGED = tuple(f.name for f in fields(Metrics) if f.name not in _OWN)
