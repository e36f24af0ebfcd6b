"""How to run a job, as one value every front end builds and every engine reads: the CLI,
the Python API, tune, vote and the Ray engine all hand a ``RunOptions`` on, so none of them
imports it from the runner that consumes it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ._engine.policy import RetryPolicy

__all__ = ["DEFAULT_TIMEOUT", "FLEX_TIMEOUT", "RunOptions", "parse_duration"]

DEFAULT_TIMEOUT = 120.0
"""Seconds a request may take before it is a timeout (retried, then the pack is split)."""
FLEX_TIMEOUT = 900.0
"""``--mode flex``'s default ``--timeout``: OpenAI's guide raises the client's to 15 minutes,
as flex answers queue behind the default tier's."""
CACHE_RETENTIONS = ("in_memory", "24h", "5m", "1h")
"""``--cache-retention``: OpenAI's ``prompt_cache_retention`` values, then Anthropic's
``cache_control.ttl`` ones; each provider refuses the other's with a line naming its own."""

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run a job (the CLI's options, minus the I/O paths)."""

    batch_size: int | None = None
    """Records per request; None sizes packs adaptively (start 5, up to max_batch_size)."""
    max_batch_size: int = 50
    concurrency: int | None = None
    """A cap on requests in flight; None: as many as the provider's limits and latency call for."""
    pack: str | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = DEFAULT_TIMEOUT
    rpm: float | None = None
    tpm: float | None = None
    seed: int = 0
    max_cost: float | None = None
    """Stop before the projected spend (spent + requests in flight + the next one) passes this (USD)."""
    shuffle: bool = True
    """Place records in packs in a seeded random order (within a page of pending items),
    so position effects inside a pack do not fall on the same records every run."""
    mode: str = "sync"
    """``sync``: requests now; ``flex``: requests now at the flex tier (batch prices, slower,
    sometimes refused for want of capacity: ``policy.flex_fallback``); ``batch``: the
    provider's batch API (half price, results within 24 h)."""
    poll_interval: float = 5.0
    """Batch mode: seconds before a batch is first polled (then ×1.5 per poll, up to a minute)."""
    retry_failed: bool = True
    """A re-run asks again the records that failed for reasons that may pass (``_engine.policy.MAY_PASS``)."""


def parse_duration(value: str | float) -> float:
    """Seconds from ``90``, ``"90s"``, ``"10m"``, ``"1.5h"`` or ``"2d"``; ValueError with the
    accepted forms for anything else (or a negative or unbounded duration).

        >>> parse_duration("10m"), parse_duration("1.5h"), parse_duration(30)
        (600.0, 5400.0, 30.0)
    """
    text = str(value).strip().lower()
    scale = _UNITS.get(text[-1:]) if text else None
    number = text[:-1] if scale is not None else text
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(
            f"{value!r} is not a duration: give seconds, or a number with s, m, h or d (10m, 1.5h)"
        )
    return seconds
