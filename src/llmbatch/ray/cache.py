"""The result cache for Ray workers: one actor on the driver's machine owns the SQLite file.

SQLite's WAL mode needs every process that opens the file on one machine (it does
not work over a network file system), so workers on other nodes never open the
cache themselves: ``CacheActor`` is placed on the driver's node and keeps the one
connection; each worker's Runner gets a ``SharedCache`` (the Cache Protocol)
that forwards to it. ``--cache-dir`` is then a path on the driver's
machine (the head node under ``ray job submit``), and a re-run of a killed
cluster job skips every record whose answer reached the cache.

The cache key is computed by the actor, from the item text, with ResultCache's
own function: the proxy's ``key`` is the text itself, so the key's definition
lives in one place (``_store.cache``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .._store.cache import ResultCache

__all__ = ["CacheActor", "SharedCache"]

Scope = tuple[str, str, str]
"""(endpoint, model, task fingerprint): what ResultCache.open scopes its keys by."""


class CacheActor:
    """ResultCaches under one directory, one per scope (``ray.remote(CacheActor)``, one thread)."""

    def __init__(self, cache_dir: str) -> None:
        self.cache_dir = cache_dir
        self._caches: dict[Scope, ResultCache] = {}

    def _cache(self, scope: Scope) -> ResultCache:
        cache = self._caches.get(scope)
        if cache is None:
            endpoint, model, fingerprint = scope
            cache = ResultCache.open(
                self.cache_dir, endpoint=endpoint, model=model, task_fingerprint=fingerprint
            )
            self._caches[scope] = cache
        return cache

    def get_many(self, scope: Scope, texts: Sequence[str]) -> dict[str, Any]:
        """Cached answers by item text, for the texts that have one."""
        cache = self._cache(scope)
        keys = {cache.key(text): text for text in texts}
        return {keys[key]: answer for key, answer in cache.get_many(list(keys)).items()}

    def put_many(self, scope: Scope, entries: list[tuple[str, Any]]) -> None:
        cache = self._cache(scope)
        cache.put_many((cache.key(text), answer) for text, answer in entries)

    def flush(self) -> None:
        """Nothing to do: returns once this caller's earlier ``put_many`` calls are committed."""

    def close(self) -> None:
        for cache in self._caches.values():
            cache.close()
        self._caches.clear()


class SharedCache:
    """What a worker's Runner sees as its ResultCache: keys are the item texts, the actor hashes them.

    ``get_many`` waits for the actor (the Runner asks once per page of pending
    items); ``put_many`` does not (Ray runs one caller's calls in order, and the
    worker calls ``flush`` before it hands a block back).
    """

    def __init__(self, actor: Any, scope: Scope) -> None:
        self._actor = actor
        self._scope = scope

    def key(self, text: str) -> str:
        return text

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        import ray

        found: dict[str, Any] = ray.get(self._actor.get_many.remote(self._scope, list(keys)))
        return found

    def put_many(self, entries: Iterable[tuple[str, Any]]) -> None:
        rows = list(entries)
        if rows:
            self._actor.put_many.remote(self._scope, rows)

    def flush(self) -> None:
        import ray

        ray.get(self._actor.flush.remote())

    def close(self) -> None:
        """The actor's connection outlives a block; nothing to close here."""
