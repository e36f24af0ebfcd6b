"""Other providers' OpenAI-shaped batch APIs (``/v1/files`` + ``/v1/batches``): what differs.

``--mode batch --base-url …`` sends a job through whichever of these the endpoint is, named by
``--batch-api`` or known from the URL's host. What each provider documents (read 2026-12-04):

    openai     purpose ``batch``; window 24h; 50,000 lines, 200 MB
               https://platform.openai.com/docs/guides/batch
    groq       as OpenAI, and a completion window of 24h to 7d (a longer one is more likely
               to finish; lines left when it closes expire); 50% off, which does not stack
               with prompt caching; https://console.groq.com/docs/batch
    together   purpose ``batch-api``; lines ``{custom_id, body}`` (the endpoint is the
               batch's, not the line's); window 24h only; 50,000 lines, 100 MB; creating a
               batch answers ``{"job": batch}``; statuses in capitals; "up to 50%" off on
               some models; https://docs.together.ai/docs/inference/batch/overview
    deepinfra  "OpenAI-compatible", 20% off; no other difference is documented
               https://deepinfra.com/blog/batch-api

The simulator emulates each (``llmbatch sim serve --batch-api together``) from its own
table, so that a wrong fact here is caught by a test rather than agreed with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from .._exceptions import UsageError
from .base import BatchLimits

__all__ = ["BATCH_APIS", "BatchShape", "batch_shape"]

OPENAI_LIMITS: Final = BatchLimits(max_requests=50_000, max_bytes=200_000_000)


@dataclass(frozen=True, slots=True)
class BatchShape:
    """How one provider's OpenAI-shaped batch API differs from OpenAI's."""

    name: str
    purpose: str = "batch"
    """The file's ``purpose`` on upload."""
    window: str = "24h"
    """The completion window asked for unless ``--completion-window`` says otherwise."""
    longest_window_hours: int = 24
    """Windows from 24 h to this many hours are taken (Groq: up to 7 days)."""
    limits: BatchLimits = OPENAI_LIMITS
    line_url: bool = True
    """Lines carry ``method`` and ``url``; False: ``{custom_id, body}`` only (Together)."""

    def check_window(self, window: str) -> str:
        """``window`` if this API takes it; a UsageError naming what it takes otherwise."""
        hours = _hours(window)
        if hours is None or not 24 <= hours <= self.longest_window_hours:
            takes = "24h" if self.longest_window_hours == 24 else f"24h to {self.longest_window_hours // 24}d"
            raise UsageError(f"--completion-window {window}: the {self.name} batch API takes {takes}")
        return window


BATCH_APIS: Final[dict[str, BatchShape]] = {
    "openai": BatchShape("openai"),
    "groq": BatchShape("groq", longest_window_hours=7 * 24),
    "together": BatchShape(
        "together",
        purpose="batch-api",
        limits=BatchLimits(max_requests=50_000, max_bytes=100_000_000),
        line_url=False,
    ),
    "deepinfra": BatchShape("deepinfra"),
}

HOSTS: Final = {
    "api.groq.com": "groq",
    "api.together.xyz": "together",
    "api.together.ai": "together",
    "api.deepinfra.com": "deepinfra",
}
"""The batch API an endpoint speaks, by its host, when ``--batch-api`` is not given."""


def batch_shape(base_url: str | None, name: str | None = None) -> BatchShape:
    """The batch API named (``--batch-api``), else the one the URL's host is known for, else OpenAI's."""
    if name is not None:
        shape = BATCH_APIS.get(name)
        if shape is None:
            raise UsageError(f"--batch-api {name}: choose from {', '.join(BATCH_APIS)}")
        return shape
    host = urlsplit(base_url).hostname if base_url else None
    return BATCH_APIS[HOSTS.get(host or "", "openai")]


def _hours(window: str) -> int | None:
    match = re.fullmatch(r"(\d{1,4})([hd])", window)
    if match is None:
        return None
    return int(match[1]) * (24 if match[2] == "d" else 1)
