"""The shared limiter without Ray: the actor class is a plain class, the proxy takes any actor handle."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from llmbatch._gates.limiter import RateLimiter, Reservation
from llmbatch._metrics import Metrics
from llmbatch.ray.limiter import RateLimiterActor, SharedLimiter


class _Method:
    """``handle.method.remote(...)`` as Ray spells it: a coroutine for async methods."""

    def __init__(self, target: Callable[..., Coroutine[Any, Any, Any]], log: list[str], name: str) -> None:
        self.target = target
        self.log = log
        self.name = name
        self.pending: list[asyncio.Task[Any]] = []

    def remote(self, *args: Any) -> Any:
        self.log.append(self.name)
        if self.name == "acquire":
            return self.target(*args)
        # Fire-and-forget calls run soon, like an actor's queue.
        task = asyncio.get_running_loop().create_task(self.target(*args))
        self.pending.append(task)
        return task


class FakeHandle:
    def __init__(self, actor: RateLimiterActor) -> None:
        self.log: list[str] = []
        for name, method in inspect.getmembers(actor, inspect.iscoroutinefunction):
            setattr(self, name, _Method(method, self.log, name))

    async def drain(self) -> None:
        for method in vars(self).values():
            if isinstance(method, _Method) and method.pending:
                await asyncio.gather(*method.pending)
                method.pending.clear()


def test_the_proxy_covers_what_the_runner_uses_of_a_rate_limiter() -> None:
    public = {name for name in dir(RateLimiter) if not name.startswith("_")}
    public |= {"buckets"}  # an instance attribute the runner reads
    state = {"clock", "sleep", "configured", "learn", "paused_until", "pauses"}
    missing = sorted(public - state - set(dir(SharedLimiter)))
    assert missing == [], f"SharedLimiter lacks {missing}: forward them to the actor"
    for name in ("acquire",):
        assert inspect.iscoroutinefunction(getattr(SharedLimiter, name))


async def test_acquire_goes_through_the_actor_and_reports_debt() -> None:
    actor = RateLimiterActor({"requests": 60}, headroom=0.0)
    handle = FakeHandle(actor)
    proxy = SharedLimiter(handle, await actor.limits())
    assert proxy.limits() == {"requests": 60.0}
    reservation = await proxy.acquire(100, 20)
    assert isinstance(reservation, Reservation)
    assert reservation.tokens == 120
    assert not proxy.in_debt()
    assert actor.limiter.buckets["requests"].level == pytest.approx(59, abs=0.01)


async def test_settle_release_headers_and_pause_are_forwarded() -> None:
    actor = RateLimiterActor({"requests": 600, "tokens": 10_000})
    handle = FakeHandle(actor)
    proxy = SharedLimiter(handle, await actor.limits())
    reservation = await proxy.acquire(1000, 500)
    proxy.settle(reservation, 900, 100, refund_output=True)
    proxy.observe_headers({"X-RateLimit-Remaining-Tokens": "5000", "x-request-id": "abc"})
    proxy.observe_headers({"content-type": "application/json"})  # nothing relevant: not sent
    proxy.pause(30)
    await handle.drain()
    assert handle.log == ["acquire", "settle", "observe_headers", "pause"]
    assert actor.limiter.buckets["tokens"].level == pytest.approx(5000, abs=5)
    assert actor.limiter.paused_until > 0
    proxy.release(reservation)
    await handle.drain()


async def test_the_mirror_follows_learnt_limits_for_check_and_buckets() -> None:
    actor = RateLimiterActor({})
    handle = FakeHandle(actor)
    proxy = SharedLimiter(handle, await actor.limits())
    assert proxy.buckets == {}
    await actor.observe_headers({"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "900"})
    await proxy.acquire(10, 10)
    assert proxy.buckets["tokens"].capacity == 1000
    with pytest.raises(Exception, match="can never fit"):
        proxy.check(2000, 10)


async def test_an_actor_found_by_name_adopts_the_new_runs_limits() -> None:
    actor = RateLimiterActor({"requests": 60}, headroom=0.0)
    await actor.configure({"requests": 60})
    kept = actor.limiter
    await actor.configure({})  # nothing configured: keep what is there
    assert actor.limiter is kept
    await actor.configure({"requests": 120})
    assert await actor.limits() == {"requests": 120.0}


async def test_runs_report_apart_and_the_stop_reason_is_per_run() -> None:
    actor = RateLimiterActor({})
    part = Metrics()
    part.requests, part.items_ok = 3, 10
    part.items_failed["invalid"] = 2
    part.latencies.extend([0.1, 0.2])
    await actor.report("a", part)
    await actor.report("a", part)
    await actor.report("b", part)
    await actor.stop("a", "quota exhausted")
    await actor.stop("a", "a later reason")
    assert await actor.stop_reason("b") is None
    merged, reason = await actor.finish("a")
    assert (merged.requests, merged.items_ok, merged.items_failed["invalid"]) == (6, 20, 4)
    assert merged.latencies == [0.1, 0.2, 0.1, 0.2]
    assert reason == "quota exhausted"
    assert (await actor.finish("a"))[0].requests == 0  # forgotten once read


def test_merge_adds_counters() -> None:
    into, part = Metrics(), Metrics()
    part.cost, part.prompt_tokens, part.items_cached = 0.5, 100, 4
    part.pack_sizes[5] += 2
    into.merge(part)
    into.merge(part)
    assert (into.cost, into.prompt_tokens, into.items_cached, into.pack_sizes[5]) == (1.0, 200, 8, 4)
