"""OpenAI's automatic prompt caching, as the simulator emulates it (``SimConfig.prompt_caching``).

A prompt of at least ``MIN_TOKENS`` tokens is cached in steps of ``STEP`` tokens,
in the order the model reads it: the response schema or tools first, then the
messages. A later prompt that starts with a cached step reads the longest such
step as ``prompt_tokens_details.cached_tokens``. An entry is written when its
request's answer is ready (requests sent together all miss) and lives
``TTL_SECONDS`` after its last use (real seconds, as the rate limits: ``time_scale``
does not shorten it), or a day for ``prompt_cache_retention="24h"``. Cached tokens still
count against the TPM limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

__all__ = ["MIN_TOKENS", "RETENTION", "STEP", "TTL_SECONDS", "PrefixCache", "prefix_hashes"]

MIN_TOKENS = 1024
STEP = 128
TTL_SECONDS = 300.0
RETENTION = {None: TTL_SECONDS, "in_memory": TTL_SECONDS, "24h": 86_400.0}
"""Seconds an entry lives by ``prompt_cache_retention``."""
_PRUNE_AT = 100_000


def prefix_hashes(tokens: Sequence[str], model: str = "") -> tuple[str, ...]:
    """A hash of the first ``MIN_TOKENS``, ``MIN_TOKENS + STEP``, … tokens (as many as fit),
    for ``model`` (each model has a cache of its own)."""
    digest = hashlib.sha256(model.encode() + b"\x00")
    marks: list[str] = []
    start = 0
    for end in range(MIN_TOKENS, len(tokens) + 1, STEP):
        digest.update("\x00".join(tokens[start:end]).encode() + b"\x00")
        marks.append(digest.copy().hexdigest())
        start = end
    return tuple(marks)


class PrefixCache:
    """Cached prompt prefixes by hash, with their expiry on ``clock``."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}

    def read(self, marks: tuple[str, ...]) -> int:
        """Tokens of the longest cached prefix of a prompt with these ``prefix_hashes``."""
        now = self._clock()
        for step in range(len(marks) - 1, -1, -1):
            if self._expiry.get(marks[step], -1.0) > now:
                return MIN_TOKENS + step * STEP
        return 0

    def write(self, marks: tuple[str, ...], ttl: float = TTL_SECONDS) -> None:
        """Cache (or keep alive) every step of a prompt that was just answered, for ``ttl`` s."""
        expiry = self._clock() + ttl
        for mark in marks:
            self._expiry[mark] = expiry
        if len(self._expiry) > _PRUNE_AT:
            now = self._clock()
            self._expiry = {mark: until for mark, until in self._expiry.items() if until > now}
