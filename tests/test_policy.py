"""Retry policy: every row of the decision table, retry sizes and backoff bounds."""

from __future__ import annotations

import random

import pytest

from llmbatch import (
    AuthenticationError,
    BadRequest,
    CapacityUnavailable,
    ConnectionFailed,
    FatalError,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RequestTimeout,
    RetryableError,
    RetryPolicy,
    ServerError,
)
from llmbatch._engine.policy import Backoff, Fail, Retry, Split, Stop, Wait

POLICY = RetryPolicy()
TRANSIENT = [
    RequestTimeout("timed out"),
    ServerError("overloaded", status=529),
    ServerError("bad gateway", status=502),
    RetryableError("try later"),
    ProviderError("unknown failure"),
]


def rng() -> random.Random:
    return random.Random(1234)


# -- rate limits ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 10])
def test_rate_limited_with_retry_after_waits_exactly(size: int) -> None:
    decision = POLICY.on_error(RateLimited("slow down", retry_after=7.5), size=size, failures=1, rng=rng())
    assert decision == Wait(7.5)


def test_rate_limited_with_zero_retry_after() -> None:
    assert POLICY.on_error(RateLimited("x", retry_after=0.0), size=3, failures=4, rng=rng()) == Wait(0.0)


@pytest.mark.parametrize("failures", [1, 2, 3, 6, 10])
def test_rate_limited_without_retry_after_backs_off(failures: int) -> None:
    decision = POLICY.on_error(RateLimited("slow down"), size=5, failures=failures, rng=rng())
    assert isinstance(decision, Wait)
    backoff = POLICY.rate_limit_backoff
    assert 0.0 <= decision.delay <= min(backoff.cap, backoff.base * 2 ** (failures - 1))


def test_rate_limited_backoff_is_reproducible() -> None:
    a = POLICY.on_error(RateLimited("x"), size=5, failures=3, rng=random.Random(7))
    b = POLICY.on_error(RateLimited("x"), size=5, failures=3, rng=random.Random(7))
    assert a == b


# -- flex without capacity ------------------------------------------------------------------


@pytest.mark.parametrize("failures", [1, 2, 3, 8, 20])
def test_flex_without_capacity_retries_the_same_pack_after_its_own_backoff(failures: int) -> None:
    error = CapacityUnavailable("HTTP 429: Resource Unavailable", status=429)
    decision = POLICY.on_error(error, size=10, failures=failures, rng=rng())
    # Not Wait (no sender pauses: it is not the account's rate) and never Split.
    assert isinstance(decision, Retry)
    backoff = POLICY.unavailable_backoff
    assert 0.0 <= decision.delay <= min(backoff.cap, backoff.base * 2 ** (failures - 1))


# -- fatal ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        QuotaExhausted("insufficient_quota: check your plan and billing"),
        AuthenticationError("invalid api key; set OPENAI_API_KEY", status=401),
        AuthenticationError("forbidden", status=403),
        FatalError("nothing will work"),
    ],
)
@pytest.mark.parametrize("size", [1, 8])
def test_fatal_errors_stop_the_job(error: FatalError, size: int) -> None:
    assert POLICY.on_error(error, size=size, failures=1, rng=rng()) == Stop(str(error))


def test_quota_429_is_not_a_rate_limit() -> None:
    # A spend cap says 429 too, but waiting cannot fix it.
    decision = POLICY.on_error(QuotaExhausted("spend cap", status=429), size=4, failures=1, rng=rng())
    assert isinstance(decision, Stop)


# -- bad requests --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [2, 3, 50])
def test_bad_request_splits_a_pack(size: int) -> None:
    assert (
        POLICY.on_error(BadRequest("invalid content", status=400), size=size, failures=1, rng=rng())
        == Split()
    )


def test_bad_request_fails_a_lone_item_with_the_reason() -> None:
    decision = POLICY.on_error(
        BadRequest("contains a forbidden token", status=400), size=1, failures=1, rng=rng()
    )
    assert decision == Fail("rejected by the provider: contains a forbidden token", "bad_request")


# -- transient failures --------------------------------------------------------------------


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__ + str(e.status))
def test_transient_retries_then_splits(error: ProviderError) -> None:
    first = POLICY.on_error(error, size=6, failures=1, rng=rng())
    assert isinstance(first, Retry)
    assert 0.0 <= first.delay <= POLICY.backoff.base
    for failures in range(POLICY.split_after, POLICY.split_after + 4):
        later = POLICY.on_error(error, size=6, failures=failures, rng=rng())
        assert isinstance(later, Split)
        assert 0.0 <= later.delay <= min(POLICY.backoff.cap, POLICY.backoff.base * 2 ** (failures - 1))


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__ + str(e.status))
def test_lone_transient_never_splits(error: ProviderError) -> None:
    for failures in range(1, 12):
        assert isinstance(POLICY.on_error(error, size=1, failures=failures, rng=rng()), Retry)


def test_split_after_is_configurable() -> None:
    policy = RetryPolicy(split_after=4)
    decisions = [policy.on_error(ServerError("x"), size=2, failures=f, rng=rng()) for f in range(1, 6)]
    assert [type(d) for d in decisions] == [Retry, Retry, Retry, Split, Split]


# -- truncation ------------------------------------------------------------------------------


@pytest.mark.parametrize("boosted", [False, True])
def test_truncated_pack_splits(boosted: bool) -> None:
    assert POLICY.on_truncated(size=2, boosted=boosted) == Split()


def test_truncated_lone_item_retries_with_a_boost_then_fails() -> None:
    assert POLICY.on_truncated(size=1, boosted=False) == Retry(0.0)
    decision = POLICY.on_truncated(size=1, boosted=True)
    assert isinstance(decision, Fail)
    assert decision.kind == "truncated"
    assert "truncated" in decision.reason


def test_truncated_lone_item_on_its_last_attempt_fails_without_a_boosted_retry() -> None:
    last = POLICY.max_attempts - 1
    assert POLICY.on_truncated(size=1, boosted=False, attempts=last - 1) == Retry(0.0)
    decision = POLICY.on_truncated(size=1, boosted=False, attempts=last)
    assert isinstance(decision, Fail)
    assert decision.kind == "truncated"


# -- retry sizes and attempts ----------------------------------------------------------------


def test_retry_size_halves_and_the_last_attempt_is_alone() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.retry_size(10, a) for a in range(3)] == [10, 5, 1]
    policy = RetryPolicy(max_attempts=5)
    assert [policy.retry_size(16, a) for a in range(5)] == [16, 8, 4, 2, 1]
    assert [policy.retry_size(3, a) for a in range(4)] == [3, 1, 1, 1]


def test_retry_size_is_at_least_one() -> None:
    policy = RetryPolicy(max_attempts=10)
    assert all(policy.retry_size(b, a) >= 1 for b in range(1, 40) for a in range(12))


def test_single_attempt_policy_is_always_alone() -> None:
    assert RetryPolicy(max_attempts=1).retry_size(10, 0) == 1


def test_item_exhausted() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.item_exhausted(a) for a in range(5)] == [False, False, False, True, True]


# -- backoff -----------------------------------------------------------------------------------


@pytest.mark.parametrize("failures", [0, 1, 2, 3, 5, 8, 20])
def test_backoff_full_jitter_bounds(failures: int) -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    ceiling = min(backoff.cap, backoff.base * 2 ** max(0, failures - 1))
    generator = rng()
    delays = [backoff.delay(failures, generator) for _ in range(500)]
    assert all(0.0 <= d <= ceiling for d in delays)
    # full jitter: spread over the whole window, not bunched at the top
    assert min(delays) < 0.1 * ceiling
    assert max(delays) > 0.9 * ceiling


@pytest.mark.parametrize("floor", [0.2, 1.0, 100.0])
def test_backoff_floor(floor: float) -> None:
    backoff = Backoff(base=1.0, cap=8.0)
    generator = rng()
    ceiling = 4.0  # failures=3
    delays = [backoff.delay(3, generator, floor=floor) for _ in range(300)]
    assert all(floor <= d <= max(floor, ceiling) for d in delays)


def test_backoff_is_reproducible_with_a_seed() -> None:
    backoff = Backoff()
    a = [backoff.delay(n, random.Random(5)) for n in range(1, 8)]
    b = [backoff.delay(n, random.Random(5)) for n in range(1, 8)]
    assert a == b


def test_backoff_after_very_many_failures_stays_capped() -> None:
    backoff = Backoff(base=1.0, cap=60.0)
    generator = rng()
    assert all(0.0 <= backoff.delay(n, generator) <= 60.0 for n in (64, 1100, 10**6))


# -- connection failures: never the items' fault; a lasting outage stops the job -------------------


@pytest.mark.parametrize("failures", [1, 2, 5])
def test_a_connection_failure_retries_the_same_pack_unsplit(failures: int) -> None:
    decision = POLICY.on_error(ConnectionFailed("refused"), size=10, failures=failures, rng=rng())
    assert isinstance(decision, Retry)


def test_a_connection_failure_stops_the_job_once_the_outage_lasts() -> None:
    policy = RetryPolicy(outage_after=30.0)
    short = policy.on_error(ConnectionFailed("refused"), size=4, failures=3, rng=rng(), unreachable_for=29.9)
    assert isinstance(short, Retry)
    long = policy.on_error(ConnectionFailed("refused"), size=4, failures=3, rng=rng(), unreachable_for=30.0)
    assert isinstance(long, Stop) and "run the same command to resume" in long.reason
    # A server that answers (even with errors) is no outage.
    assert not isinstance(
        policy.on_error(
            ServerError("bad gateway", status=502), size=1, failures=1, rng=rng(), unreachable_for=99
        ),
        Stop,
    )
