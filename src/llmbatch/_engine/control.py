"""Adaptive concurrency and pack size.

Concurrency is found, not guessed. The number of requests in flight that the
provider's limits call for is Little's law: the requests per second the limits
allow (the request bucket's rate, or the token bucket's rate over the tokens a
request is charged) times the latency a request takes. The runner works that
``need`` out from the limiter and the latencies it sees; the controller ramps
towards it. It starts low (providers punish sudden bursts) and slow-starts: +1
per success (doubling every round trip) while no limit is known, +half per
success once the need is known, until the need is met or the first sign of
pressure. Below the need it then closes half the gap per window of
``limit`` successes; at the need it probes +1 per window, no further than a
margin above the need (more in flight only queues in the limiter). Without
known limits (no headers, no --rpm/--tpm) it probes +1 per window while
latency holds — a local server's latency grows with load, and that stops it. A
429 or a timeout halves it, at most once per window, so one burst of errors is
one decrease. ``cap`` is the user's --concurrency; by default none binds
before the provider's limits do.

Pack size ("progressive batching") starts small and is judged a window at a
time: if the share of items answered validly on their first try falls below
the target, the pack shrinks; otherwise it grows while the items a request
answers per second of its latency keep rising, and steps back to the previous
size when growing made requests slower per item. That per-request speed is what
throughput is at a given concurrency, but unlike items per second of wall time
it does not move with the concurrency ramp or the initial burst of a rate
limit's allowance — noise that made the size oscillate. Growth is bounded by
``max_batch`` (the user's cap, the quality ceiling from ``tune``), by what fits
the context and the token limit (``fit``) and by the size where growing stopped
paying.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ConcurrencyControl", "LittleNeed", "PackSizeControl"]


MAX_CONCURRENCY = 1000
"""The most requests in flight without a --concurrency: far above what any tier's limits call
for with packed requests, below what the HTTP client's connection pool holds."""

NEED_MARGIN = 1.5
"""How far above the Little's-law need the limit may probe: latency estimates lag, and a
little more in flight costs nothing when the limiter holds the excess."""


class LittleNeed:
    """The requests in flight the provider's limits call for: Little's law, from moving
    averages of a request's latency and of the tokens it is charged against the token limit.

    >>> need = LittleNeed()
    >>> need.observe(latency=2.0, charged=1000)
    >>> need.of(request_rate=50.0, token_rate=20_000.0)  # tokens bind: 20 requests/s × 2 s
    40
    """

    __slots__ = ("charged", "latency")

    def __init__(self) -> None:
        self.latency = 0.0
        self.charged = 0.0

    def observe(self, *, latency: float, charged: float) -> None:
        """One answered request: ``latency`` seconds, ``charged`` tokens against the limit."""
        self.latency = latency if not self.latency else 0.8 * self.latency + 0.2 * latency
        self.charged = charged if not self.charged else 0.8 * self.charged + 0.2 * charged

    def of(self, *, request_rate: float | None, token_rate: float | None) -> int | None:
        """Requests per second the binding limit allows (rates per second; None: no such
        limit) times the seconds a request takes; None while no limit or latency is known."""
        rates = [] if request_rate is None else [request_rate]
        if token_rate is not None and self.charged > 0:
            rates.append(token_rate / self.charged)
        if not rates or not self.latency:
            return None
        return max(1, math.ceil(min(rates) * self.latency))


class ConcurrencyControl:
    """Requests in flight within [1, cap], ramped towards what the limits call for.

    >>> control = ConcurrencyControl(None, time.monotonic)   # doctest: +SKIP
    >>> control.on_success(latency=2.0, baseline=1.8, need=40)  # doctest: +SKIP
    """

    __slots__ = ("_cooldown_until", "_credit", "_slow_start", "cap", "clock", "limit")

    def __init__(self, cap: int | None, clock: Callable[[], float], *, start: int | None = None) -> None:
        self.cap = cap or MAX_CONCURRENCY
        self.clock = clock
        self.limit = max(1, min(self.cap, start if start is not None else 4))
        self._slow_start = True
        self._credit = 0
        self._cooldown_until = 0.0

    def on_success(self, latency: float, baseline: float | None, need: int | None = None) -> None:
        """A request succeeded; ``baseline`` is the best latency seen for similar requests and
        ``need`` the concurrency the provider's limits call for (None: no limit known)."""
        if baseline is not None and latency > 2.0 * baseline:
            return  # latency is not holding: the endpoint is saturating
        ceiling = self.cap if need is None else min(self.cap, max(need + 2, math.ceil(need * NEED_MARGIN)))
        if self.limit >= ceiling:
            # At what known limits call for, slow start stays armed until the first sign of
            # pressure: when the need rises (the allowance opens to the rest of the job) it is
            # met at once, not closed half a gap per window.
            self._slow_start = need is not None and self._slow_start
            return
        if self._slow_start:
            # Classic slow start doubles per round trip. Once the limits are known (the first
            # response's headers) that is only slow: the limiter admits no more than they
            # allow, so more in flight costs nothing, and a job that fits the allowance left
            # (a short one) is done in about one round trip instead of five. So it jumps to
            # the need; a provider that slows under load is still caught by the latency check.
            self.limit = min(ceiling, self.limit + 1 if need is None else max(self.limit + 1, need))
            return
        # Successes since the last step, counted whole: 1/limit summed limit times can fall
        # short of 1.0 in floating point and skip a window.
        self._credit += 1
        if self._credit < self.limit:
            return
        self._credit = 0
        step = 1 if need is None or self.limit >= need else math.ceil((need - self.limit) / 2)
        self.limit = min(ceiling, self.limit + step)

    def on_pressure(self, latency_hint: float = 1.0) -> None:
        """A 429 or a timeout: halve, once per window (about one request latency)."""
        now = self.clock()
        self._slow_start = False
        if now < self._cooldown_until:
            return
        self.limit = max(1, self.limit // 2)
        self._credit = 0
        self._cooldown_until = now + max(0.1, latency_hint)


@dataclass(slots=True)
class _Window:
    requests: int = 0
    items: int = 0
    ok_first: int = 0
    ok: int = 0
    latency: float = 0.0


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
        self._window = _Window()
        self._previous: tuple[int, float] | None = None  # (size, items/s of latency) of the last window
        self._fits = max_batch
        """What fits the context and the token limit (``fit``)."""
        self._planned: int | None = None
        """What the rest of the job calls for (``plan``); None before a plan is made."""
        self._pays = max_batch
        """The size where growing stopped paying (a step back)."""
        self.history: list[tuple[float, int]] = [(clock(), self.size)]

    @property
    def _ceiling(self) -> int:
        planned = self.max_batch if self._planned is None else self._planned
        return max(1, min(self.max_batch, self._fits, self._pays, planned))

    def fit(self, largest: int) -> None:
        """Never exceed ``largest`` (what fits the context / token limit)."""
        self._fits = max(1, largest)
        if self.size > self._ceiling:
            self._set(self._ceiling)

    def plan(self, size: int) -> None:
        """The size the rest of the job calls for now (``best_pack_size``). A ceiling, not a
        jump: the first-try success rate still gates growth towards it, a window at a time."""
        if not self.adaptive:
            return
        self._planned = max(1, size)
        if self.size > self._ceiling:
            self._set(self._ceiling)

    def observe(
        self, *, size: int, ok_first: int, ok: int, latency: float = 1.0, limited: bool = False
    ) -> None:
        """A request of ``size`` items came back after ``latency`` seconds with ``ok`` valid
        answers, ``ok_first`` of them on a first try.

        Only packs of the current size count: packs of an older size (still in
        flight when the size changed) and smaller retry packs say nothing about
        this size. ``limited`` is true while a rate-limit bucket is overdrawn:
        then the limit sets the pace, and items per charged token only improve
        with size, so slower requests are no reason to step back.
        """
        if not self.adaptive or size != self.size:
            return
        window = self._window
        window.requests += 1
        window.items += size
        window.ok_first += ok_first
        window.ok += ok
        window.latency += max(1e-6, latency)
        if window.requests < self.window_requests:
            return
        speed = window.ok / window.latency
        success = window.ok_first / window.items if window.items else 1.0
        self._decide(success, speed, limited)
        self._window = _Window()

    def _decide(self, success: float, speed: float, limited: bool) -> None:
        if success < self.target:
            self._previous = None
            self._set(max(1, math.floor(self.size * 0.7)))
            return
        previous = self._previous
        self._previous = (self.size, speed)
        slower = previous is not None and previous[0] < self.size and speed < 0.9 * previous[1]
        if slower and not limited:
            # Growing made requests slower per item: go back and stop growing from here.
            assert previous is not None
            self._pays = previous[0]
            self._set(previous[0])
            return
        # Far below what the rest of the job calls for (a low token limit wants the largest
        # packs), a good window skips a step: each step costs a round trip of smaller packs.
        far = self._planned is not None and self._planned >= self.size * self.growth**2
        growth = self.growth**2 if far else self.growth
        grown = max(self.size + 1, math.ceil(self.size * growth))
        if grown * 1.25 >= self._ceiling:
            grown = self._ceiling  # no last small step below the ceiling (20, 40, 50 → 20, 50)
        self._set(min(self._ceiling, grown))

    def _set(self, size: int) -> None:
        if size != self.size:
            self.size = size
            self.history.append((self.clock(), size))
