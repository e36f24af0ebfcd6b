"""``estimate --pilot N``: a small real run that measures what the plan otherwise models.

The plan's answers are modelled from the schema, and its high end assumes every answer uses
its whole budget and 5% of requests go twice. A pilot sends ``N`` records (the first that
render, packed as the packed strategy would pack them) through the provider, and reads back
from its store what each answered record's answer cost in output tokens and how many records
went more than once. ``apply_pilot`` then prices every strategy from those figures:

    expected  modelled output × (measured mean / modelled mean), and the resend share measured
    low       the same at the 10th percentile of the measured answers less 10%, nothing resent
    high      the same at the 90th percentile plus 10%, twice the measured resend share (at
              least the plan's 5%), no cache read, flex at the full price; a pilot of fewer
              than MIN_REQUESTS answered packs keeps the plan's high (its answer budget)

The pilot's own cost is printed; its answers are not kept.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._options import RunOptions
from .._pricing import Price, PriceTable
from .._store.job import JobStore
from .._task import Task
from .._types import Usage
from ..providers.base import Provider
from .estimate import RETRY_ALLOWANCE, Estimate, StrategyEstimate
from .job import JobSpec, run_job

__all__ = ["MIN_REQUESTS", "Pilot", "apply_pilot", "run_pilot"]

MIN_REQUESTS = 5
"""Answered packs a pilot needs before its 90th percentile stands for the high end."""


@dataclass(frozen=True, slots=True)
class Pilot:
    """What a pilot run measured."""

    records: int
    """Records answered."""
    requests: int
    sent: int
    """Record-sends over all requests (a record resent counts again)."""
    cost: float | None
    answer_tokens: tuple[float, ...]
    """Output tokens per record of each answered request (its output over its size), sorted."""

    @property
    def resent(self) -> float:
        """The share of sends beyond one per record."""
        return max(0.0, self.sent / self.records - 1) if self.records else 0.0

    def quantile(self, q: float) -> float:
        values = self.answer_tokens
        if not values:
            return 0.0
        return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]

    @property
    def mean(self) -> float:
        return sum(self.answer_tokens) / len(self.answer_tokens) if self.answer_tokens else 0.0


async def run_pilot(
    task: Task,
    records: Sequence[Mapping[str, Any]],
    provider: Provider,
    *,
    batch_size: int,
    prices: PriceTable | None,
) -> Pilot:
    """Run ``records`` through ``provider`` in packs of ``batch_size`` (no cache, a scratch job)."""
    with tempfile.TemporaryDirectory(prefix="llmbatch-pilot-") as scratch:
        spec = JobSpec(
            task=task,
            input="<pilot>",
            output=None,
            job_dir=Path(scratch) / "job",
            options=RunOptions(batch_size=batch_size, max_batch_size=batch_size, shuffle=False),
            prices=prices,
            records=list(records),
        )
        await run_job(spec, provider)
        store = JobStore.open(spec.job_dir, readonly=True)
        try:
            rows = store.db.execute(
                "SELECT size, completion_tokens, status, items_ok, cost FROM requests"
            ).fetchall()
            done = store.counts().get("done", 0)
        finally:
            store.close()
    answered = sorted(c / size for size, c, status, ok, _ in rows if status == "ok" and ok and size)
    unpriced = any(cost is None for _, _, status, _, cost in rows if status == "ok")
    return Pilot(
        records=done,
        requests=len(rows),
        sent=sum(size for size, *_ in rows),
        cost=None if unpriced else sum(cost or 0.0 for *_, cost in rows),
        answer_tokens=tuple(answered),
    )


def apply_pilot(report: Estimate, pilot: Pilot, price: Price | None) -> Estimate:
    """The plan with every strategy's output and resends taken from ``pilot`` (the cascade row,
    whose later models the pilot did not meet, as it was)."""
    packed = report.strategies[1] if len(report.strategies) > 1 else report.strategies[0]
    modelled = packed.output_tokens / packed.records if packed.records else 0.0
    if price is None or not pilot.answer_tokens or not modelled:
        return report
    scale = {"mean": pilot.mean / modelled, "low": pilot.quantile(0.1) * 0.9 / modelled}
    scale["high"] = pilot.quantile(0.9) * 1.1 / modelled
    keep_high = len(pilot.answer_tokens) < MIN_REQUESTS
    resent = pilot.resent
    return dataclasses.replace(
        report, strategies=[_rescaled(s, scale, resent, price, keep_high) for s in report.strategies]
    )


def _rescaled(
    s: StrategyEstimate, scale: dict[str, float], resent: float, price: Price, keep_high: bool
) -> StrategyEstimate:
    if s.cascade:
        return s
    discounted = s.mode != "sync"

    def cost(output: float, again: float, cached: int) -> float:
        usage = Usage(
            prompt_tokens=round(s.input_tokens * (1 + again)),
            completion_tokens=round(output * (1 + again)),
            cached_tokens=cached,
        )
        return price.cost(usage, batch=discounted)

    again = max(2 * resent, RETRY_ALLOWANCE)
    worst = Usage(
        prompt_tokens=round(s.input_tokens * (1 + again)),
        completion_tokens=round(s.output_tokens * scale["high"] * (1 + again)),
    )
    return dataclasses.replace(
        s,
        output_tokens=round(s.output_tokens * scale["mean"]),
        cost=cost(s.output_tokens * scale["mean"], resent, s.cached_tokens),
        low=cost(s.output_tokens * scale["low"], 0.0, s.cached_tokens),
        high=s.high if keep_high else price.cost(worst, batch=s.mode == "batch"),
    )
