"""Adaptive concurrency and pack size.

Concurrency is AIMD, as in TCP congestion control: it starts low (providers
punish sudden bursts), grows by one per successful request until the first
sign of pressure (slow start), then by one per window of ``concurrency``
successes while latency holds; a 429 or a timeout halves it, at most once per
window, so one burst of errors is one decrease.

Pack size ("progressive batching") starts small and is judged a window at a
time: if the share of items answered validly on their first try falls below
the target, the pack shrinks; otherwise it grows while items per second keep
rising, and steps back to the previous size when growing made things slower.
Growth is bounded by ``max_batch`` (the user's cap, the quality ceiling from
``tune``) and by what fits the context and the token limit (``fit``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ConcurrencyControl", "PackSizeControl"]


class ConcurrencyControl:
    """AIMD on the number of requests in flight, within [1, cap]."""

    __slots__ = ("_cooldown_until", "_credit", "_slow_start", "cap", "clock", "limit")

    def __init__(self, cap: int, clock: Callable[[], float], *, start: int | None = None) -> None:
        self.cap = cap
        self.clock = clock
        self.limit = max(1, min(cap, start if start is not None else 4))
        self._slow_start = True
        self._credit = 0.0
        self._cooldown_until = 0.0

    def on_success(self, latency: float, baseline: float | None) -> None:
        """A request succeeded; ``baseline`` is the best latency seen for similar requests."""
        if baseline is not None and latency > 2.0 * baseline:
            return  # latency is not holding: the endpoint is saturating
        if self._slow_start:
            self.limit = min(self.cap, self.limit + 1)
            return
        self._credit += 1.0 / self.limit
        if self._credit >= 1.0:
            self._credit = 0.0
            self.limit = min(self.cap, self.limit + 1)

    def on_pressure(self, latency_hint: float = 1.0) -> None:
        """A 429 or a timeout: halve, once per window (about one request latency)."""
        now = self.clock()
        self._slow_start = False
        if now < self._cooldown_until:
            return
        self.limit = max(1, self.limit // 2)
        self._credit = 0.0
        self._cooldown_until = now + max(0.1, latency_hint)


@dataclass(slots=True)
class _Window:
    started: float
    requests: int = 0
    items: int = 0
    ok_first: int = 0
    ok: int = 0


class PackSizeControl:
    """Chooses the pack size from the last window's success rate and items per second."""

    def __init__(
        self,
        *,
        start: int,
        max_batch: int,
        clock: Callable[[], float],
        adaptive: bool = True,
        target_success: float = 0.95,
        window_requests: int = 3,
        growth: float = 2.0,
    ) -> None:
        self.adaptive = adaptive
        self.max_batch = max_batch
        self.size = max(1, min(start, max_batch))
        self.clock = clock
        self.target = target_success
        self.window_requests = window_requests
        self.growth = growth
        self._window = _Window(clock())
        self._previous: tuple[int, float] | None = None  # (size, items/s) of the last window
        self._ceiling = max_batch
        self.history: list[tuple[float, int]] = [(clock(), self.size)]

    def fit(self, largest: int) -> None:
        """Never exceed ``largest`` (what fits the context / token limit)."""
        self._ceiling = max(1, min(self.max_batch, largest))
        if self.size > self._ceiling:
            self._set(self._ceiling)

    def observe(self, *, size: int, ok_first: int, ok: int, limited: bool = False) -> None:
        """A request of ``size`` items came back with ``ok`` valid answers, ``ok_first`` on a first try.

        Only packs of the current size count: packs of an older size (still in
        flight, or queued at the limiter when the size changed) and smaller retry
        packs say nothing about this size. ``limited`` is true while a rate-limit
        bucket is overdrawn: then the limit sets items per second, so a drop in
        it is no reason to step back (items per charged token only improve with
        size).
        """
        if not self.adaptive or size != self.size:
            return
        window = self._window
        now = self.clock()
        if window.requests == 0:
            # The clock starts at the first answer of this size: time spent
            # waiting for it is latency, not throughput.
            window.started = now
        window.requests += 1
        window.items += size
        window.ok_first += ok_first
        if window.requests > 1:
            window.ok += ok
        if window.requests <= self.window_requests:
            return
        rate = window.ok / max(1e-6, now - window.started)
        success = window.ok_first / window.items if window.items else 1.0
        self._decide(success, rate, limited)
        self._window = _Window(now)

    def _decide(self, success: float, rate: float, limited: bool) -> None:
        if success < self.target:
            self._previous = None
            self._set(max(1, math.floor(self.size * 0.7)))
            return
        previous = self._previous
        self._previous = (self.size, rate)
        slower = previous is not None and previous[0] < self.size and rate < 0.9 * previous[1]
        if slower and not limited:
            # Growing made things slower: go back and stop growing from here.
            assert previous is not None
            self._ceiling = previous[0]
            self._set(previous[0])
            return
        self._set(min(self._ceiling, max(self.size + 1, math.ceil(self.size * self.growth))))

    def _set(self, size: int) -> None:
        if size != self.size:
            self.size = size
            self.history.append((self.clock(), size))
