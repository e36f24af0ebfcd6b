"""Request and token buckets, reservations and refunds, header sync, global pause.

Each bucket holds up to a minute's allowance and refills continuously, as
providers' limits do. A request reserves one request slot and its estimated
tokens (prompt + answer budget) *before* it is sent; when usage comes back the
unused part is refunded. The level may go below zero: a reservation that finds
the bucket short takes what it needs and waits until the refill has paid the
debt. That makes reservations first-come first-served without a queue — each
later caller sees a deeper debt and waits longer.

``x-ratelimit-*`` / ``anthropic-ratelimit-*`` headers correct the buckets
(the provider knows what is left; we only estimate), and a 429 pauses every
sender until its retry-after.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from .._exceptions import ItemError
from .._types import FailureKind, LimitName
from .headers import BucketState, parse_rate_limits

__all__ = ["Limiter", "RateLimiter", "Reservation", "TokenBucket"]

DEFAULT_HEADROOM = 1.0
"""Seconds of each limit's refill kept unspent (see TokenBucket): 1.7% of a minute."""

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """A continuously refilled bucket of ``capacity`` per minute.

    ``headroom`` seconds of refill are never spent. The provider's bucket starts
    draining only when the first request *arrives*, some transit time after this
    one took from a full bucket; until then the provider's refill is lost at its
    cap and ours is not, so without headroom the client runs that transit time
    ahead of the provider for the whole run and meets a 429 whenever the pace is
    tight (measured: ~0.3 s, about one request, 1-2% of requests answered 429).
    """

    __slots__ = ("capacity", "headroom", "level", "rate", "updated")

    def __init__(self, per_minute: float, now: float, *, headroom: float = 0.0) -> None:
        self.capacity = float(per_minute)
        self.rate = self.capacity / 60.0
        self.headroom = headroom
        self.level = self.ceiling
        self.updated = now

    @property
    def ceiling(self) -> float:
        """The most the bucket holds for us: capacity less the headroom."""
        return self.capacity - min(self.headroom, 30.0) * self.rate

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.ceiling, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, amount: float, now: float) -> float:
        """Take ``amount`` now; returns the seconds to wait until it is paid for."""
        self._refill(now)
        self.level -= amount
        return 0.0 if self.level >= 0 else -self.level / self.rate

    def give(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level = min(self.ceiling, self.level + amount)

    def sync(self, state: BucketState, now: float, *, adopt_limit: bool) -> None:
        """Correct from what the provider reported after a response."""
        self._refill(now)
        if adopt_limit and state.limit and state.limit > 0:
            self.capacity = state.limit
            self.rate = state.limit / 60.0
            self.level = min(self.level, self.ceiling)
        if state.remaining is not None and state.remaining < self.level:
            self.level = state.remaining

    def fits(self, amount: float) -> bool:
        return amount <= self.capacity

    def available(self, now: float) -> float:
        """What can be taken now without waiting (none while in debt)."""
        self._refill(now)
        return max(0.0, self.level)


@dataclass(slots=True)
class Reservation:
    requests: int
    tokens: int
    input_tokens: int
    output_tokens: int


class Limiter(Protocol):
    """What a runner needs of its rate limiter: ``RateLimiter`` in one process, the Ray
    engine's ``SharedLimiter`` (one limiter actor for every worker) across a cluster."""

    @property
    def buckets(self) -> Mapping[str, TokenBucket]:
        """The limits in force, by name (``requests``, ``tokens``, ...): read, never drawn from."""
        ...

    def check(self, prompt_tokens: int, max_tokens: int) -> None:
        """Raise ``ItemError`` (``too_large``) for a request no minute's allowance can admit."""
        ...

    async def acquire(self, prompt_tokens: int, max_tokens: int) -> Reservation:
        """Wait until the request may be sent; the reservation to settle or release."""
        ...

    def settle(
        self,
        reservation: Reservation,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        refund_output: bool = False,
    ) -> None:
        """Reconcile an answered request's reservation with its usage."""
        ...

    def release(self, reservation: Reservation) -> None:
        """Give back what an unanswered request reserved."""
        ...

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Correct the limits from a response's rate-limit headers."""
        ...

    def pause(self, seconds: float) -> None:
        """Hold every sender for ``seconds`` (a 429's retry-after)."""
        ...

    def in_debt(self) -> bool:
        """True while a limit, not the sender, sets the pace."""
        ...


class RateLimiter:
    """The shared gate every request passes before it is sent.

    ``rpm``/``tpm`` come from options; missing limits are learnt from the
    first responses' headers (``learn=True``), and until then nothing limits.
    ``input_tpm``/``output_tpm`` are for providers that limit them separately.
    """

    def __init__(
        self,
        *,
        rpm: float | None = None,
        tpm: float | None = None,
        input_tpm: float | None = None,
        output_tpm: float | None = None,
        learn: bool = True,
        headroom: float = DEFAULT_HEADROOM,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.clock = clock
        self.headroom = headroom
        self.sleep = sleep
        now = clock()
        self.buckets: dict[str, TokenBucket] = {}
        self.configured: set[str] = set()
        for name, limit in (
            (LimitName.REQUESTS, rpm),
            (LimitName.TOKENS, tpm),
            (LimitName.INPUT_TOKENS, input_tpm),
            (LimitName.OUTPUT_TOKENS, output_tpm),
        ):
            if limit:
                self.buckets[name] = TokenBucket(limit, now, headroom=headroom)
                self.configured.add(name)
        self.learn = learn
        self.paused_until = 0.0
        self.pauses = 0

    def check(self, prompt_tokens: int, max_tokens: int) -> None:
        """Raise ItemError when a request this large could never be sent."""
        for name, amount in self._amounts(prompt_tokens, max_tokens).items():
            bucket = self.buckets.get(name)
            if bucket is not None and not bucket.fits(amount):
                raise ItemError(
                    f"a request of {amount} {name.replace('_', ' ')} can never fit the "
                    f"limit of {bucket.capacity:.0f} per minute; shorten the record or raise the limit",
                    kind=FailureKind.TOO_LARGE,
                )

    @staticmethod
    def _amounts(prompt_tokens: int, max_tokens: int) -> dict[str, int]:
        return {
            LimitName.REQUESTS: 1,
            LimitName.TOKENS: prompt_tokens + max_tokens,
            LimitName.INPUT_TOKENS: prompt_tokens,
            LimitName.OUTPUT_TOKENS: max_tokens,
        }

    async def acquire(self, prompt_tokens: int, max_tokens: int) -> Reservation:
        """Wait until the pause is over and the buckets can pay for this request."""
        await self._wait_pause()
        now = self.clock()
        amounts = self._amounts(prompt_tokens, max_tokens)
        wait = 0.0
        for name, bucket in self.buckets.items():
            wait = max(wait, bucket.take(amounts[name], now))
        reservation = Reservation(1, amounts[LimitName.TOKENS], prompt_tokens, max_tokens)
        if wait > 0:
            try:
                await self.sleep(wait)
            except asyncio.CancelledError:
                # Never sent: give back the request slot as well as the tokens.
                self.release(reservation)
                slots = self.buckets.get(LimitName.REQUESTS)
                if slots is not None:
                    slots.give(reservation.requests, self.clock())
                raise
            await self._wait_pause()
        return reservation

    async def _wait_pause(self) -> None:
        while True:
            remaining = self.paused_until - self.clock()
            if remaining <= 0:
                return
            await self.sleep(remaining)

    def settle(
        self,
        reservation: Reservation,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        refund_output: bool = False,
    ) -> None:
        """Reconcile a finished request's reservation with its usage.

        The prompt estimate is corrected both ways (a shortfall is charged, a
        surplus refunded). The answer budget is refunded only where the provider
        does so too (``refund_output``): OpenAI and most compatible servers charge
        the full ``max_tokens`` when they admit a request and keep it, so a
        client refund would believe in tokens the provider never gives back —
        and meet 429s.
        """
        now = self.clock()
        prompt_delta = reservation.input_tokens - prompt_tokens
        output_delta = reservation.output_tokens - completion_tokens if refund_output else 0
        for name, delta in (
            (LimitName.TOKENS, prompt_delta + output_delta),
            (LimitName.INPUT_TOKENS, prompt_delta),
            (LimitName.OUTPUT_TOKENS, output_delta),
        ):
            bucket = self.buckets.get(name)
            if bucket is not None and delta:
                bucket.give(delta, now)

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose request was never answered (only tokens: the slot was used)."""
        self.settle(reservation, 0, 0, refund_output=True)

    def in_debt(self) -> bool:
        """True while some bucket is overdrawn: the limit, not the sender, sets the pace."""
        now = self.clock()
        for bucket in self.buckets.values():
            bucket._refill(now)
            if bucket.level < 0:
                return True
        return False

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Correct the buckets from rate-limit headers; learn limits not set by options."""
        if not headers:
            return
        now = self.clock()
        for name, state in parse_rate_limits(headers, time.time()).items():
            bucket = self.buckets.get(name)
            if bucket is None:
                if not self.learn or not state.limit:
                    continue
                bucket = self.buckets[name] = TokenBucket(state.limit, now, headroom=self.headroom)
            bucket.sync(state, now, adopt_limit=name not in self.configured)

    def pause(self, seconds: float) -> None:
        """Stop every sender for ``seconds`` (a 429 said so)."""
        until = self.clock() + seconds
        if until > self.paused_until:
            self.paused_until = until
            self.pauses += 1

    def limits(self) -> dict[str, float]:
        return {name: bucket.capacity for name, bucket in self.buckets.items()}
