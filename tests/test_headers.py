"""Rate-limit and retry headers: optional, forgiving, never an error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from llmbatch._gates.headers import BucketState, parse_go_duration, parse_rate_limits, parse_retry_after

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("20ms", 0.020),
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("1h2m3.5s", 3723.5),
        ("1m30.5s", 90.5),
        ("0s", 0.0),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("15ns", 15e-9),
        ("2h", 7200.0),
        (" 3s ", 3.0),
        ("7", 7.0),  # plain seconds, as some servers send
        ("0.5", 0.5),
    ],
)
def test_go_durations(value: str, seconds: float) -> None:
    assert parse_go_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["", "   ", "soon", "1x", "s", "1s garbage", "1 s", "m5", "1.5.5s", "inf", "nan", "-", "1e400"]
)
def test_garbage_durations_are_none(value: str) -> None:
    assert parse_go_duration(value) is None


# -- retry-after -------------------------------------------------------------------------------


def test_retry_after_seconds() -> None:
    assert parse_retry_after({"Retry-After": "12"}, NOW) == 12.0
    assert parse_retry_after({"retry-after": "0.25"}, NOW) == 0.25
    assert parse_retry_after({"retry-after": "-3"}, NOW) == 0.0


def test_retry_after_ms_wins() -> None:
    headers = {"retry-after-ms": "1500", "retry-after": "2"}
    assert parse_retry_after(headers, NOW) == 1.5


def test_bad_retry_after_ms_falls_back_to_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "soon", "retry-after": "2"}, NOW) == 2.0


def test_retry_after_http_date() -> None:
    when = datetime.fromtimestamp(NOW + 30, tz=UTC)
    assert parse_retry_after({"retry-after": format_datetime(when, usegmt=True)}, NOW) == pytest.approx(30.0)


def test_retry_after_http_date_in_the_past_is_zero() -> None:
    when = datetime.fromtimestamp(NOW - 300, tz=UTC)
    assert parse_retry_after({"retry-after": format_datetime(when, usegmt=True)}, NOW) == 0.0


@pytest.fixture
def far_timezone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run in UTC+9, so that reading a time as local time shows."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("far_timezone")
def test_retry_after_date_without_zone_is_utc() -> None:
    # "-0000" means "UTC, zone unknown"; it must not be read in the machine's local time.
    value = format_datetime(datetime.fromtimestamp(NOW + 60, tz=UTC).replace(tzinfo=None))
    assert value.endswith("-0000")
    assert parse_retry_after({"retry-after": value}, NOW) == pytest.approx(60.0)


@pytest.mark.usefixtures("far_timezone")
def test_rfc3339_reset_without_offset_is_utc() -> None:
    found = parse_rate_limits({"anthropic-ratelimit-requests-reset": "2026-03-01T12:00:30"}, NOW)
    assert found["requests"].reset == pytest.approx(30.0)


@pytest.mark.parametrize("value", ["soon", "", "Wed, 99 Foo 2026", "inf", "nan", "1e999"])
def test_garbage_retry_after_is_none(value: str) -> None:
    assert parse_retry_after({"retry-after": value}, NOW) is None


def test_missing_retry_after() -> None:
    assert parse_retry_after({}, NOW) is None
    assert parse_retry_after({"content-type": "text/plain"}, NOW) is None


# -- rate-limit headers ----------------------------------------------------------------------------


def test_openai_headers() -> None:
    headers = {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "120ms",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "29500",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert parse_rate_limits(headers, NOW) == {
        "requests": BucketState(500.0, 499.0, pytest.approx(0.12)),  # type: ignore[arg-type]
        "tokens": BucketState(30000.0, 29500.0, 360.0),
    }


def test_anthropic_headers_with_rfc3339_resets() -> None:
    reset = datetime.fromtimestamp(NOW + 45, tz=UTC).isoformat().replace("+00:00", "Z")
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "10",
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-tokens-limit": "90000",
        "anthropic-ratelimit-tokens-remaining": "80000",
        "anthropic-ratelimit-tokens-reset": "2026-03-01T12:00:10+00:00",
        "anthropic-ratelimit-input-tokens-limit": "80000",
        "anthropic-ratelimit-input-tokens-remaining": "79000",
        "anthropic-ratelimit-input-tokens-reset": "2026-03-01T12:00:01.5Z",
        "anthropic-ratelimit-output-tokens-limit": "16000",
        "anthropic-ratelimit-output-tokens-remaining": "15000",
        "anthropic-ratelimit-output-tokens-reset": "2026-03-01T11:00:00Z",  # in the past
    }
    found = parse_rate_limits(headers, NOW)
    assert set(found) == {"requests", "tokens", "input_tokens", "output_tokens"}
    assert found["requests"].limit == 50 and found["requests"].remaining == 10
    assert found["requests"].reset == pytest.approx(45.0)
    assert found["tokens"].reset == pytest.approx(10.0)
    assert found["input_tokens"] == BucketState(80000.0, 79000.0, pytest.approx(1.5))  # type: ignore[arg-type]
    assert found["output_tokens"].reset == 0.0


def test_partial_and_garbled_rate_limit_headers() -> None:
    headers = {
        "X-RateLimit-Remaining-Tokens": "100",
        "x-ratelimit-limit-requests": "many",
        "x-ratelimit-reset-requests": "whenever",
        "anthropic-ratelimit-output-tokens-reset": "not a time",
    }
    assert parse_rate_limits(headers, NOW) == {
        "tokens": BucketState(None, 100.0, None),
        "requests": BucketState(None, None, None),
        "output_tokens": BucketState(None, None, None),
    }


def test_no_rate_limit_headers() -> None:
    assert parse_rate_limits({}, NOW) == {}
    assert parse_rate_limits({"content-length": "12", "retry-after": "3"}, NOW) == {}


def test_non_finite_numbers_are_ignored() -> None:
    found = parse_rate_limits({"x-ratelimit-limit-tokens": "inf", "x-ratelimit-remaining-tokens": "nan"}, NOW)
    assert found == {"tokens": BucketState(None, None, None)}
