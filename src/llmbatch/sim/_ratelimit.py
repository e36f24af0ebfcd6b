"""Server-side rate limits: OpenAI-style request and token buckets.

Each limit is a bucket holding up to one minute's allowance and refilled
continuously at ``limit / 60`` per second, so a client that paces itself never
sees a 429 and a burst sees one as soon as the bucket is dry. A rejected request
takes nothing from either bucket (OpenAI counts failed requests too; the
simulator keeps it simple and says so in the stats).

The clock is injected so tests move time instead of sleeping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Admission", "RateLimits", "TokenBucket", "go_duration"]


class TokenBucket:
    """A bucket of ``capacity`` units refilled at ``capacity / 60`` units per second."""

    __slots__ = ("_clock", "_updated", "capacity", "level", "rate")

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self._clock = clock
        self._updated = clock()

    def refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._updated) * self.rate)
        self._updated = now

    def wait(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 now; ``inf`` if it never fits)."""
        if amount > self.capacity:
            return math.inf
        return max(0.0, (amount - self.level) / self.rate)

    def take(self, amount: float) -> None:
        self.level -= amount

    def headers(self, kind: str) -> dict[str, str]:
        until_full = (self.capacity - self.level) / self.rate
        return {
            f"x-ratelimit-limit-{kind}": str(int(self.capacity)),
            f"x-ratelimit-remaining-{kind}": str(max(0, math.floor(self.level))),
            f"x-ratelimit-reset-{kind}": go_duration(until_full),
        }


@dataclass(frozen=True, slots=True)
class Admission:
    """The verdict on one request: admitted, or which limit refused it and for how long."""

    admitted: bool
    kind: str = ""
    """``requests`` or ``tokens`` when refused."""
    retry_after: float | None = None
    """Seconds until the request would fit; ``None`` when it never can (too large)."""
    headers: dict[str, str] = field(default_factory=dict)


class RateLimits:
    """The requests-per-minute and tokens-per-minute limits of one simulated model.

    >>> limits = RateLimits(rpm=60, tpm=None, clock=lambda: 0.0)
    >>> limits.admit(tokens=100).admitted
    True
    """

    __slots__ = ("requests", "tokens")

    def __init__(self, rpm: int | None, tpm: int | None, clock: Callable[[], float]) -> None:
        self.requests = TokenBucket(rpm, clock) if rpm else None
        self.tokens = TokenBucket(tpm, clock) if tpm else None

    def admit(self, tokens: int) -> Admission:
        """Take one request and ``tokens`` tokens, or refuse without taking anything."""
        waits: list[tuple[float, str]] = []
        for kind, bucket, amount in self._buckets(tokens):
            bucket.refill()
            wait = bucket.wait(amount)
            if wait > 0:
                waits.append((wait, kind))
        if waits:
            wait, kind = max(waits)
            return Admission(False, kind, None if math.isinf(wait) else wait, headers=self._headers())
        for _, bucket, amount in self._buckets(tokens):
            bucket.take(amount)
        return Admission(True, headers=self._headers())

    def _buckets(self, tokens: int) -> list[tuple[str, TokenBucket, float]]:
        out: list[tuple[str, TokenBucket, float]] = []
        if self.requests is not None:
            out.append(("requests", self.requests, 1.0))
        if self.tokens is not None:
            out.append(("tokens", self.tokens, float(tokens)))
        return out

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.requests is not None:
            headers.update(self.requests.headers("requests"))
        if self.tokens is not None:
            headers.update(self.tokens.headers("tokens"))
        return headers


def go_duration(seconds: float) -> str:
    """Seconds as a Go ``time.Duration`` string, to the millisecond: ``20ms``, ``1.5s``, ``6m0s``.

    >>> go_duration(360), go_duration(0.02), go_duration(3725.5)
    ('6m0s', '20ms', '1h2m5.5s')
    """
    millis = max(0, round(seconds * 1000))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
