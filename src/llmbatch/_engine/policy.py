"""What to do after a request: pure decisions over an attempt state.

Nothing here sleeps, sends or stores; the runner carries decisions out. Time
and randomness come in as arguments, so every rule is tested instantly.

| outcome                          | decision                                           |
|----------------------------------|----------------------------------------------------|
| 429 rate limited                 | Wait(retry-after or backoff), same pack            |
| flex 429 resource unavailable    | Retry after its own backoff (no pause, no split);  |
|                                  | past ``flex_deadline`` its items take the fallback |
| quota 429, 401, 403              | Stop the job (state saved, resumable)              |
| timeout, 5xx, 529                | Retry after backoff; split after repeated failures |
| connection refused, DNS failure  | Retry after backoff (not the items' fault: never  |
|                                  | fails them); Stop once the endpoint has been      |
|                                  | unreachable for ``outage_after`` seconds          |
| 400 bad request                  | Split; a lone item fails with the reason           |
| truncated (finish_reason length) | Split; a lone item retries with a larger budget    |
| item missing / invalid           | re-pack that item smaller; last attempt alone      |
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from .._exceptions import (
    BadRequest,
    CapacityUnavailable,
    ConnectionFailed,
    FatalError,
    NotAnAPI,
    ProviderError,
    RateLimited,
)
from .._types import FailureKind

__all__ = [
    "FLEX_FALLBACKS",
    "MAY_PASS",
    "Backoff",
    "Decision",
    "Fail",
    "FlexFallback",
    "Retry",
    "RetryPolicy",
    "Split",
    "Stop",
    "Wait",
]


MAY_PASS = frozenset(
    {
        FailureKind.TIMEOUT,
        FailureKind.CONNECTION,
        FailureKind.NOT_API,
        FailureKind.SERVER_ERROR,
        FailureKind.RATE_LIMITED,
        FailureKind.UNAVAILABLE,
        FailureKind.RETRYABLE,
        FailureKind.PROVIDER_ERROR,
        FailureKind.EXPIRED,
        FailureKind.CANCELED,
        FailureKind.MISSING,
        FailureKind.INVALID,
        FailureKind.TRUNCATED,
    }
)
"""Failure kinds that may pass when asked again (a re-run retries them). The others will not:
unreadable input, a request too large for the context, a duplicate id, a provider's 400."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter, capped (AWS "full jitter").

    Full jitter spreads retries of many senders over the whole window, so a
    burst of failures does not come back as a synchronised burst of retries.
    """

    base: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int, rng: random.Random, *, floor: float = 0.0) -> float:
        # The exponent is bounded: 2**1100 does not fit in a float.
        ceiling = min(self.cap, self.base * (2.0 ** min(max(0, failures - 1), 60)))
        return max(floor, rng.uniform(0.0, ceiling))


@dataclass(frozen=True, slots=True)
class Wait:
    """Pause every sender for ``delay`` seconds, then resend the same pack."""

    delay: float


@dataclass(frozen=True, slots=True)
class Retry:
    """Resend the same pack after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True, slots=True)
class Split:
    """Resend the pack as two halves after ``delay`` seconds."""

    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Fail:
    """Fail every item of the pack with this reason."""

    reason: str
    kind: str
    """A ``FailureKind``."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the job: nothing sent now can succeed."""

    reason: str


Decision = Wait | Retry | Split | Fail | Stop

FlexFallback = Literal["sync", "batch", "fail"]
FLEX_FALLBACKS: tuple[FlexFallback, ...] = ("sync", "batch", "fail")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The retry rules and their limits.

    ``max_attempts`` counts answer attempts of an item (missing, invalid or
    truncated answers); ``max_transient`` counts request failures an item lived
    through (timeouts, 5xx), which are not its fault and so get a separate,
    larger budget.
    """

    max_attempts: int = 3
    max_transient: int = 8
    split_after: int = 2
    backoff: Backoff = Backoff()
    rate_limit_backoff: Backoff = Backoff(base=1.0, cap=60.0)
    budget_boost: int = 4
    outage_after: float = 60.0
    """Seconds of nothing but connection failures after which the job stops (resumable)."""
    unavailable_backoff: Backoff = Backoff(base=2.0, cap=60.0)
    """Flex's "resource unavailable": capacity comes back in seconds to minutes, not at a
    rate the account controls, so the wait grows to a minute and never pauses the others."""
    flex_deadline: float = 600.0
    """Seconds an item may keep meeting "resource unavailable" before ``flex_fallback``."""
    flex_fallback: FlexFallback = "sync"
    """What a flex straggler does past ``flex_deadline``: ``sync`` resends it at the default
    tier (full price), ``batch`` fails it as ``unavailable`` for the job to send through the
    batch API, ``fail`` fails it as ``unavailable`` (a re-run asks again)."""

    def on_error(
        self,
        error: ProviderError,
        *,
        size: int,
        failures: int,
        rng: random.Random,
        unreachable_for: float = 0.0,
    ) -> Decision:
        """Decide after a request failed; ``failures`` counts this pack's failures including this one.

        ``unreachable_for``: seconds since the first of the connection failures that no
        answer from the endpoint has followed (0 when it answered since).
        """
        if isinstance(error, FatalError):
            return Stop(str(error))
        if isinstance(error, ConnectionFailed) and unreachable_for >= self.outage_after:
            what = "not answering as the API" if isinstance(error, NotAnAPI) else "unreachable"
            return Stop(
                f"{error} — {what} for {unreachable_for:.0f} s: stopped with every record kept; "
                "check the endpoint (--base-url, network, proxy), then run the same command to resume"
            )
        if isinstance(error, RateLimited):
            floor = error.retry_after or 0.0
            if error.retry_after is not None:
                return Wait(floor)
            return Wait(self.rate_limit_backoff.delay(failures, rng, floor=floor))
        if isinstance(error, CapacityUnavailable):
            # The pack is not at fault and a smaller one would meet the same shortage.
            return Retry(self.unavailable_backoff.delay(failures, rng))
        if isinstance(error, ConnectionFailed):
            # Nothing reached the endpoint: a smaller pack would fail the same way.
            return Retry(self.backoff.delay(failures, rng))
        if isinstance(error, BadRequest):
            if size > 1:
                return Split()
            return Fail(f"rejected by the provider: {error}", error.kind)
        if size > 1 and failures >= self.split_after:
            return Split(self.backoff.delay(failures, rng))
        return Retry(self.backoff.delay(failures, rng))

    def on_truncated(self, *, size: int, boosted: bool, attempts: int = 0) -> Decision:
        """The answer was cut off (finish_reason length).

        ``attempts`` counts the answer attempts the (lone) item had before this one: a
        boosted retry is another attempt, so it is only offered while one is left.
        """
        if size > 1:
            return Split()
        if boosted:
            return Fail("answer truncated even with a larger answer budget", FailureKind.TRUNCATED)
        if self.item_exhausted(attempts + 1):
            return Fail("answer truncated on the last attempt", FailureKind.TRUNCATED)
        return Retry(0.0)

    def retry_size(self, batch_size: int, attempts: int) -> int:
        """Pack size for items on their next attempt: halves per attempt, the last alone."""
        if attempts + 1 >= self.max_attempts:
            return 1
        return max(1, batch_size >> attempts)

    def item_exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
