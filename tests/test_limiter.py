"""Rate limiter: bucket arithmetic, waits, refunds, header sync and pauses — on a fake clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from _time import FakeClock
from llmbatch import ItemError
from llmbatch._gates.headers import BucketState
from llmbatch._gates.limiter import RateLimiter, TokenBucket


def limiter(fake: FakeClock, **limits: float) -> RateLimiter:
    """No headroom: the arithmetic below is exact (headroom has tests of its own)."""
    return RateLimiter(clock=fake, sleep=fake.sleep, headroom=0.0, **limits)  # type: ignore[arg-type]


# -- the bucket ------------------------------------------------------------------------------


def test_bucket_starts_full_and_refills_continuously() -> None:
    bucket = TokenBucket(60, now=0.0)
    assert (bucket.capacity, bucket.rate, bucket.level) == (60.0, 1.0, 60.0)
    assert bucket.take(60, now=0.0) == 0.0
    assert bucket.level == 0.0
    bucket.give(0, now=15.0)  # refill only
    assert bucket.level == pytest.approx(15.0)


def test_headroom_keeps_seconds_of_refill_unspent() -> None:
    # The provider's bucket starts draining a transit time after ours: the headroom
    # keeps us that far behind it instead of ahead.
    bucket = TokenBucket(60, now=0.0, headroom=1.0)
    assert bucket.level == bucket.ceiling == 59.0
    assert bucket.take(59, now=0.0) == 0.0
    bucket.give(0, now=1_000.0)
    assert bucket.level == 59.0  # refills to the ceiling, not the capacity
    assert bucket.take(60, now=1_000.0) == pytest.approx(1.0)  # a whole capacity waits one second
    assert bucket.fits(60)  # and is still sendable


async def test_the_limiter_keeps_a_second_of_headroom_by_default() -> None:
    fake = FakeClock(1000.0)
    gate = RateLimiter(tpm=6000, clock=fake, sleep=fake.sleep)
    await gate.acquire(5900, 0)
    assert fake.sleeps == []
    await gate.acquire(1, 0)
    assert fake.sleeps == [pytest.approx(0.01)]  # 100 tokens/s: the 6000th token is headroom


def test_bucket_refill_is_capped() -> None:
    bucket = TokenBucket(60, now=0.0)
    bucket.take(10, now=0.0)
    bucket.give(0, now=10_000.0)
    assert bucket.level == 60.0
    bucket.give(500, now=10_000.0)
    assert bucket.level == 60.0


def test_bucket_debt_becomes_wait_time() -> None:
    bucket = TokenBucket(120, now=0.0)  # 2 per second
    assert bucket.take(100, now=0.0) == 0.0
    assert bucket.take(40, now=0.0) == pytest.approx(10.0)  # 20 short at 2/s
    assert bucket.level == pytest.approx(-20.0)
    assert bucket.take(20, now=5.0) == pytest.approx(15.0)  # refilled 10: -10, then 20 more: -30
    assert bucket.take(0, now=15.0) == pytest.approx(5.0)
    assert bucket.take(0, now=20.0) == 0.0


def test_bucket_ignores_a_clock_going_backwards() -> None:
    bucket = TokenBucket(60, now=100.0)
    bucket.take(30, now=100.0)
    bucket.give(0, now=50.0)
    assert bucket.level == 30.0
    assert bucket.updated == 100.0


def test_bucket_sync_lowers_but_never_raises_the_level() -> None:
    bucket = TokenBucket(100, now=0.0)
    bucket.take(50, now=0.0)
    bucket.sync(BucketState(limit=None, remaining=80, reset=None), now=0.0, adopt_limit=True)
    assert bucket.level == 50.0
    bucket.sync(BucketState(limit=None, remaining=10, reset=None), now=0.0, adopt_limit=True)
    assert bucket.level == 10.0


def test_bucket_sync_adopts_a_limit_only_when_asked() -> None:
    bucket = TokenBucket(100, now=0.0)
    bucket.sync(BucketState(limit=40, remaining=None, reset=None), now=0.0, adopt_limit=False)
    assert bucket.capacity == 100.0
    bucket.sync(BucketState(limit=40, remaining=None, reset=None), now=0.0, adopt_limit=True)
    assert (bucket.capacity, bucket.rate) == (40.0, 40.0 / 60)
    assert bucket.level <= bucket.capacity


# -- acquire ---------------------------------------------------------------------------------


async def test_no_limits_means_no_waiting() -> None:
    fake = FakeClock(1000.0)
    gate = limiter(fake)
    for _ in range(100):
        await gate.acquire(10_000, 10_000)
    assert fake.sleeps == []
    assert gate.limits() == {}


async def test_successive_acquires_wait_longer_and_longer() -> None:
    fake = FakeClock(1000.0, frozen=True)  # callers arrive at the same instant
    gate = limiter(fake, tpm=600)  # 10 tokens per second
    await gate.acquire(400, 200)  # takes the whole minute's allowance
    assert fake.sleeps == []
    await gate.acquire(50, 50)
    await gate.acquire(50, 50)
    await gate.acquire(100, 100)
    assert fake.sleeps == pytest.approx([10.0, 20.0, 40.0])


async def test_request_bucket_limits_rate() -> None:
    fake = FakeClock(1000.0, frozen=True)
    gate = limiter(fake, rpm=60)
    for _ in range(60):
        await gate.acquire(1, 1)
    assert fake.sleeps == []
    await gate.acquire(1, 1)
    await gate.acquire(1, 1)
    assert fake.sleeps == pytest.approx([1.0, 2.0])


async def test_wait_is_the_largest_of_all_buckets() -> None:
    fake = FakeClock(1000.0, frozen=True)
    gate = limiter(fake, rpm=60, tpm=600, input_tpm=60, output_tpm=6000)
    reservation = await gate.acquire(70, 10)  # input: 10 short at 1/s → 10 s
    assert fake.sleeps == pytest.approx([10.0])
    assert (reservation.requests, reservation.tokens) == (1, 80)
    assert (reservation.input_tokens, reservation.output_tokens) == (70, 10)


async def test_acquire_after_refill_does_not_wait() -> None:
    fake = FakeClock(1000.0)
    gate = limiter(fake, tpm=600)
    await gate.acquire(600, 0)
    fake.advance(60)  # a full minute later the bucket is full again
    await gate.acquire(600, 0)
    assert fake.sleeps == []


async def test_concurrent_acquires_are_served_in_arrival_order() -> None:
    fake = FakeClock(1000.0, frozen=True)
    gate = limiter(fake, tpm=60)  # 1 token per second
    await gate.acquire(60, 0)
    order: list[int] = []

    async def caller(n: int) -> None:
        await gate.acquire(5, 0)
        order.append(n)

    await asyncio.gather(*(caller(n) for n in range(4)))
    assert fake.sleeps == pytest.approx([5.0, 10.0, 15.0, 20.0])
    assert order == [0, 1, 2, 3]


# -- settle and release ----------------------------------------------------------------------


async def test_settle_refunds_unused_output_only_where_the_provider_does() -> None:
    fake = FakeClock(1000.0, frozen=True)
    gate = limiter(fake, tpm=6000, input_tpm=6000, output_tpm=6000)
    reservation = await gate.acquire(1000, 2000)
    assert gate.buckets["tokens"].level == 3000
    gate.settle(reservation, prompt_tokens=900, completion_tokens=100, refund_output=True)
    assert gate.buckets["tokens"].level == 6000 - 1000
    assert gate.buckets["input_tokens"].level == 6000 - 900
    assert gate.buckets["output_tokens"].level == 6000 - 100


async def test_settle_keeps_the_answer_budget_charged_by_default() -> None:
    """OpenAI-style limits count max_tokens at admission and keep it: no output refund."""
    fake = FakeClock(1000.0, frozen=True)
    gate = limiter(fake, tpm=6000)
    reservation = await gate.acquire(1000, 2000)
    gate.settle(reservation, prompt_tokens=900, completion_tokens=100)
    assert gate.buckets["tokens"].level == 6000 - 900 - 2000


async def test_settle_charges_a_prompt_larger_than_estimated() -> None:
    fake = FakeClock(1000.0, frozen=True)
    gate = limiter(fake, tpm=6000)
    reservation = await gate.acquire(100, 100)
    gate.settle(reservation, prompt_tokens=500, completion_tokens=500)
    assert gate.buckets["tokens"].level == 6000 - 500 - 100


async def test_release_gives_back_tokens_but_not_the_request_slot() -> None:
    fake = FakeClock(1000.0, frozen=True)
    gate = limiter(fake, rpm=10, tpm=6000)
    reservation = await gate.acquire(100, 100)
    gate.release(reservation)  # sent, never answered: the slot was used
    assert gate.buckets["tokens"].level == 6000
    assert gate.buckets["requests"].level == 9


async def test_cancelled_wait_releases_everything() -> None:
    fake = FakeClock(1000.0, frozen=True)
    blocked = asyncio.Event()

    async def sleep_forever(seconds: float) -> None:
        blocked.set()
        await asyncio.Event().wait()

    gate = RateLimiter(rpm=10, tpm=600, headroom=0.0, clock=fake, sleep=sleep_forever)
    await gate.acquire(600, 0)
    before = {name: bucket.level for name, bucket in gate.buckets.items()}
    waiter = asyncio.create_task(gate.acquire(100, 50))
    await blocked.wait()
    assert gate.buckets["tokens"].level == before["tokens"] - 150
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert {name: bucket.level for name, bucket in gate.buckets.items()} == before


# -- check -------------------------------------------------------------------------------------


def test_check_rejects_a_request_that_can_never_fit() -> None:
    gate = limiter(FakeClock(1000.0), tpm=1000)
    gate.check(500, 500)  # exactly the limit fits
    with pytest.raises(ItemError, match="1001 tokens can never fit the limit of 1000") as info:
        gate.check(501, 500)
    assert info.value.kind == "too_large"


def test_check_input_and_output_limits() -> None:
    gate = limiter(FakeClock(1000.0), input_tpm=100, output_tpm=50)
    gate.check(100, 50)
    with pytest.raises(ItemError, match="input tokens") as info:
        gate.check(101, 1)
    assert info.value.kind == "too_large"
    with pytest.raises(ItemError, match="output tokens"):
        gate.check(1, 51)


def test_check_without_limits_accepts_anything() -> None:
    limiter(FakeClock(1000.0)).check(10**9, 10**9)


# -- headers -----------------------------------------------------------------------------------


OPENAI = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "499",
    "x-ratelimit-reset-requests": "120ms",
    "x-ratelimit-limit-tokens": "30000",
    "x-ratelimit-remaining-tokens": "29000",
    "x-ratelimit-reset-tokens": "2s",
}


def anthropic_headers() -> dict[str, str]:
    reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    return {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-input-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-remaining": "39000",
        "anthropic-ratelimit-input-tokens-reset": reset,
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "7000",
        "anthropic-ratelimit-output-tokens-reset": reset,
    }


def test_learns_openai_limits_from_headers() -> None:
    gate = limiter(FakeClock(1000.0))
    gate.observe_headers(OPENAI)
    assert gate.limits() == {"requests": 500.0, "tokens": 30000.0}
    assert gate.buckets["requests"].level == 499
    assert gate.buckets["tokens"].level == 29000


def test_learns_anthropic_limits_from_headers() -> None:
    gate = limiter(FakeClock(1000.0))
    gate.observe_headers(anthropic_headers())
    assert gate.limits() == {"requests": 50.0, "input_tokens": 40000.0, "output_tokens": 8000.0}
    assert gate.buckets["input_tokens"].level == 39000
    assert gate.buckets["output_tokens"].level == 7000


def test_header_names_are_case_insensitive() -> None:
    gate = limiter(FakeClock(1000.0))
    gate.observe_headers({k.upper(): v for k, v in OPENAI.items()})
    assert gate.limits() == {"requests": 500.0, "tokens": 30000.0}


def test_learning_can_be_turned_off() -> None:
    gate = RateLimiter(learn=False, headroom=0.0, clock=FakeClock(1000.0))
    gate.observe_headers(OPENAI)
    assert gate.buckets == {}


def test_configured_limits_are_never_raised_by_headers() -> None:
    gate = limiter(FakeClock(1000.0), rpm=100, tpm=10_000)
    gate.observe_headers(OPENAI)  # the provider allows more
    assert gate.limits() == {"requests": 100.0, "tokens": 10_000.0}
    assert gate.buckets["tokens"].level == 10_000  # remaining 29000 does not raise the level


def test_headers_lower_the_level_of_configured_buckets() -> None:
    gate = limiter(FakeClock(1000.0), tpm=50_000)
    gate.observe_headers({"x-ratelimit-remaining-tokens": "1200"})
    assert gate.limits() == {"tokens": 50_000.0}
    assert gate.buckets["tokens"].level == 1200


def test_learned_limits_follow_later_headers() -> None:
    gate = limiter(FakeClock(1000.0))
    gate.observe_headers(OPENAI)
    gate.observe_headers({"x-ratelimit-limit-tokens": "1000"})
    assert gate.buckets["tokens"].capacity == 1000
    assert gate.buckets["tokens"].level <= 1000


def test_missing_or_garbled_headers_are_ignored() -> None:
    gate = limiter(FakeClock(1000.0))
    gate.observe_headers({})
    gate.observe_headers({"content-type": "application/json"})
    gate.observe_headers({"x-ratelimit-limit-requests": "lots", "x-ratelimit-remaining-requests": "nan"})
    gate.observe_headers({"x-ratelimit-remaining-tokens": "10"})  # no limit: nothing to learn
    assert gate.buckets == {}


async def test_learned_limits_then_make_callers_wait() -> None:
    fake = FakeClock(1000.0, frozen=True)
    gate = limiter(fake)
    gate.observe_headers({"x-ratelimit-limit-tokens": "600", "x-ratelimit-remaining-tokens": "0"})
    await gate.acquire(50, 50)
    assert fake.sleeps == pytest.approx([10.0])


# -- pause -------------------------------------------------------------------------------------


async def test_pause_blocks_acquire_until_it_ends() -> None:
    fake = FakeClock(1000.0)
    gate = limiter(fake)
    gate.pause(12.5)
    assert gate.pauses == 1
    await gate.acquire(1, 1)
    assert fake.sleeps == [12.5]
    assert fake.now == 1012.5
    await gate.acquire(1, 1)
    assert fake.sleeps == [12.5]  # over: no more waiting


async def test_a_shorter_pause_does_not_cut_a_longer_one() -> None:
    fake = FakeClock(1000.0)
    gate = limiter(fake)
    gate.pause(30)
    gate.pause(5)
    assert gate.pauses == 1
    gate.pause(40)
    assert gate.pauses == 2
    await gate.acquire(1, 1)
    assert fake.now == 1040.0


async def test_pause_that_starts_while_waiting_for_tokens_is_honoured() -> None:
    fake = FakeClock(1000.0)
    gate: RateLimiter

    async def sleep(seconds: float) -> None:
        await fake.sleep(seconds)
        if len(fake.sleeps) == 1:
            gate.pause(20)  # a 429 arrives while this caller waits for tokens

    gate = RateLimiter(tpm=60, headroom=0.0, clock=fake, sleep=sleep)
    await gate.acquire(60, 0)
    await gate.acquire(5, 0)
    assert fake.sleeps == pytest.approx([5.0, 20.0])


async def test_pause_in_the_past_does_not_wait() -> None:
    fake = FakeClock(1000.0)
    gate = limiter(fake)
    gate.pause(10)
    fake.advance(11)
    await gate.acquire(1, 1)
    assert fake.sleeps == []
