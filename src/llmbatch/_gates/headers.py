"""Rate-limit and retry headers of OpenAI and Anthropic, parsed as optional.

OpenAI: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, resets as Go
durations (``20ms``, ``1s``, ``6m0s``). Anthropic:
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``,
resets as RFC 3339 times. Any header may be missing or malformed; a bad value
is ignored, never an error.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from .._types import LimitName

__all__ = [
    "RATE_LIMIT_HEADER_PREFIXES",
    "BucketState",
    "parse_go_duration",
    "parse_rate_limits",
    "parse_retry_after",
    "rate_limit_headers",
]

RATE_LIMIT_HEADER_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "retry-after")
"""The response headers the limiter reads, lower-cased."""


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit and retry headers of a response, names lower-cased; the rest dropped."""
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith(RATE_LIMIT_HEADER_PREFIXES)}


_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(value: str) -> float | None:
    """Seconds in a Go duration string (``1m30.5s``), or None when it is not one."""
    value = value.strip()
    if not value:
        return None
    pos, total = 0, 0.0
    for match in _GO_PART.finditer(value):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value):
        return _number(value)  # some servers send plain seconds
    return total


def _reset_seconds(value: str, now: float) -> float | None:
    seconds = parse_go_duration(value)
    if seconds is not None:
        return seconds
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, _utc(when).timestamp() - now)


def _utc(when: datetime) -> datetime:
    """HTTP dates are GMT; a time without an offset is read as UTC, not local time."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = _number(lowered.get("retry-after-ms"))
    if millis is not None:
        return max(0.0, millis / 1000)
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):  # not an HTTP date either: ignore it
        return None
    return max(0.0, _utc(parsed).timestamp() - now)


@dataclass(frozen=True, slots=True)
class BucketState:
    """One limit as the provider reported it: capacity, what is left, seconds to full."""

    limit: float | None
    remaining: float | None
    reset: float | None


def parse_rate_limits(headers: Mapping[str, str], now: float) -> dict[str, BucketState]:
    """The limits found in headers, by ``LimitName``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    found: dict[str, BucketState] = {}
    for name in LimitName:
        bucket = name.replace("_", "-")  # as the headers spell it
        for prefix, names in (
            ("x-ratelimit-", ("limit-{b}", "remaining-{b}", "reset-{b}")),
            ("anthropic-ratelimit-", ("{b}-limit", "{b}-remaining", "{b}-reset")),
        ):
            raw = [lowered.get(prefix + n.format(b=bucket)) for n in names]
            if all(v is None for v in raw):
                continue
            state = BucketState(
                limit=_number(raw[0]),
                remaining=_number(raw[1]),
                reset=None if raw[2] is None else _reset_seconds(raw[2], now),
            )
            found[name] = state
    return found


def _number(value: str | None) -> float | None:
    """A finite number, or None ("inf" or "nan" from a server must not become a wait)."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
