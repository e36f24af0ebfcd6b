"""One rate limit for every Ray worker of a job: a named actor holding the buckets.

    driver ── creates ──▶ RateLimiterActor (named, num_cpus=0, async)
                            holds one real RateLimiter: buckets, debt, 429 pause
    worker ── Runner(limiter=SharedLimiter(actor)) ──▶ acquire: awaits the actor
                                                    settle/release/headers/pause: fire and forget

The actor runs ``RateLimiter.acquire`` itself, on its own event loop: a caller's
reservation is taken in arrival order and the caller's ``await`` returns when
the debt is paid, exactly as in one process — so the sum over workers stays
under the limit and a 429 pauses everyone. Usage, refunds and rate-limit
headers flow back the same way, so the buckets are corrected from what the
provider said to any worker.

The actor also keeps what the job's workers report (merged metrics, a stop
reason), keyed by run id so that two runs sharing one limiter stay apart.

Ray is imported by the caller (``llmbatch.ray``); this module only holds plain
classes that ``ray.remote`` turns into an actor, and a proxy that calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from .._gates.headers import rate_limit_headers
from .._gates.limiter import DEFAULT_HEADROOM, RateLimiter, Reservation, TokenBucket
from .._metrics import Metrics
from .._types import LimitName

__all__ = ["RateLimiterActor", "SharedLimiter"]

_LIMIT_NAMES = tuple(LimitName)


def _limiter_for(limits: Mapping[str, float], *, learn: bool, headroom: float) -> RateLimiter:
    return RateLimiter(
        rpm=limits.get(LimitName.REQUESTS),
        tpm=limits.get(LimitName.TOKENS),
        input_tpm=limits.get(LimitName.INPUT_TOKENS),
        output_tpm=limits.get(LimitName.OUTPUT_TOKENS),
        learn=learn,
        headroom=headroom,
    )


class RateLimiterActor:
    """The job's shared limiter, run as a Ray actor (``ray.remote(RateLimiterActor)``).

    Every method is ``async`` so that Ray runs them all on the actor's one event
    loop: the RateLimiter is never touched from two threads.

    >>> actor = ray.remote(RateLimiterActor).options(name="llmbatch-limiter").remote({"requests": 600})
    ... # doctest: +SKIP
    """

    def __init__(self, limits: Mapping[str, float], *, headroom: float = DEFAULT_HEADROOM) -> None:
        self.configured = {k: float(v) for k, v in limits.items() if v}
        self.headroom = headroom
        self.limiter = _limiter_for(self.configured, learn=True, headroom=headroom)
        self.metrics: dict[str, Metrics] = {}
        self.stopped: dict[str, str] = {}

    async def configure(self, limits: Mapping[str, float]) -> None:
        """Adopt a run's configured limits; an actor found by name may hold another run's."""
        wanted = {k: float(v) for k, v in limits.items() if v}
        if wanted and wanted != self.configured:
            self.configured = wanted
            self.limiter = _limiter_for(wanted, learn=True, headroom=self.headroom)

    async def acquire(
        self, prompt_tokens: int, max_tokens: int
    ) -> tuple[Reservation, dict[str, float], bool]:
        """Wait for the pause and the buckets; returns the reservation, the limits and the debt flag."""
        reservation = await self.limiter.acquire(prompt_tokens, max_tokens)
        return reservation, self.limiter.limits(), self.limiter.in_debt()

    async def settle(
        self, reservation: Reservation, prompt_tokens: int, completion_tokens: int, refund_output: bool
    ) -> None:
        self.limiter.settle(reservation, prompt_tokens, completion_tokens, refund_output=refund_output)

    async def release(self, reservation: Reservation) -> None:
        self.limiter.release(reservation)

    async def observe_headers(self, headers: dict[str, str]) -> None:
        self.limiter.observe_headers(headers)

    async def pause(self, seconds: float) -> None:
        self.limiter.pause(seconds)

    async def limits(self) -> dict[str, float]:
        return self.limiter.limits()

    async def pauses(self) -> int:
        return self.limiter.pauses

    # -- what the workers of a run report ----------------------------------------

    async def stop(self, run: str, reason: str) -> None:
        """A worker's job stopped (auth, quota): the run's other workers send nothing more."""
        self.stopped.setdefault(run, reason)

    async def stop_reason(self, run: str) -> str | None:
        return self.stopped.get(run)

    async def report(self, run: str, metrics: Metrics) -> None:
        merged = self.metrics.get(run)
        if merged is None:
            merged = self.metrics[run] = Metrics()
        merged.merge(metrics)

    async def finish(self, run: str) -> tuple[Metrics, str | None]:
        """The run's merged metrics and stop reason, forgotten here."""
        return self.metrics.pop(run, Metrics()), self.stopped.pop(run, None)


class SharedLimiter:
    """What a worker's Runner sees as its limiter: the ``Limiter`` Protocol over the actor.

    ``acquire`` awaits the actor; ``settle``, ``release``, ``observe_headers`` and
    ``pause`` are sent without waiting (Ray runs one caller's calls to an actor in
    order). ``check`` and ``buckets`` use a local mirror of the limits (capacities
    only: the Runner reads them to size packs and to reject a request that could
    never fit), refreshed from every ``acquire``. ``in_debt`` is the actor's
    answer at the last ``acquire``.

    >>> limiter = SharedLimiter(actor, ray.get(actor.limits.remote()))  # doctest: +SKIP
    >>> runner = Runner(task, provider, store, options, limiter=limiter)  # doctest: +SKIP
    """

    def __init__(self, actor: Any, limits: Mapping[str, float]) -> None:
        self._actor = actor
        self._mirror = _limiter_for(limits, learn=False, headroom=0.0)
        self._debt = False

    @property
    def buckets(self) -> dict[str, TokenBucket]:
        return self._mirror.buckets

    def limits(self) -> dict[str, float]:
        return self._mirror.limits()

    def check(self, prompt_tokens: int, max_tokens: int) -> None:
        self._mirror.check(prompt_tokens, max_tokens)

    async def acquire(self, prompt_tokens: int, max_tokens: int) -> Reservation:
        ref = self._actor.acquire.remote(prompt_tokens, max_tokens)
        try:
            reservation, limits, debt = await ref
        except asyncio.CancelledError:
            # Cancel the actor's wait too: RateLimiter.acquire then gives the slot back.
            with contextlib.suppress(Exception):
                _ray_cancel(ref)
            raise
        self._debt = bool(debt)
        if limits != self._mirror.limits():
            self._mirror = _limiter_for(limits, learn=False, headroom=0.0)
        reservation_: Reservation = reservation
        return reservation_

    def settle(
        self,
        reservation: Reservation,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        refund_output: bool = False,
    ) -> None:
        self._actor.settle.remote(reservation, prompt_tokens, completion_tokens, refund_output)

    def release(self, reservation: Reservation) -> None:
        self._actor.release.remote(reservation)

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        relevant = rate_limit_headers(headers)  # the rest never crosses to the actor
        if relevant:
            self._actor.observe_headers.remote(relevant)

    def pause(self, seconds: float) -> None:
        self._actor.pause.remote(seconds)

    def in_debt(self) -> bool:
        return self._debt


def _ray_cancel(ref: Any) -> None:
    import ray

    ray.cancel(ref)
