"""The result cache: a re-run, or another job over the same records, pays nothing twice.

The key is a versioned SHA-256 over canonical JSON of everything that shapes an
answer — provider endpoint (incl. base URL), model, task fingerprint
(instructions, system prompt, template, schema, params) — and the item's input
text. Change any of them and the old answer is not reused.

One SQLite file shared by every job of the user (``--cache-dir``, default the
user's cache directory), WAL mode so concurrent jobs can share it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import platformdirs

from .._task import canonical_json

__all__ = ["CACHE_VERSION", "Cache", "ResultCache", "default_cache_dir"]

CACHE_VERSION = "cache-v1"


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("llmbatch"))


class Cache(Protocol):
    """What a runner needs of its result cache: ``ResultCache`` (SQLite, one process) or
    the Ray engine's ``SharedCache`` (one cache actor for every worker)."""

    def key(self, text: str) -> str:
        """The entry's key for a rendered input (the scope is the cache's own)."""
        ...

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """The answers found, by key."""
        ...

    def put_many(self, entries: Iterable[tuple[str, Any]]) -> None:
        """Store (key, answer) pairs."""
        ...


class ResultCache:
    """Answers by content key. ``ResultCache.open(dir, endpoint=..., model=..., task=...)``."""

    def __init__(self, db: sqlite3.Connection, prefix: bytes) -> None:
        self.db = db
        self._prefix = prefix

    @classmethod
    def open(cls, cache_dir: str | Path, *, endpoint: str, model: str, task_fingerprint: str) -> ResultCache:
        path = Path(cache_dir)
        path.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path / "cache.sqlite", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=10000")
        db.execute(
            "CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, answer TEXT NOT NULL, created REAL)"
        )
        scope = canonical_json({"endpoint": endpoint, "model": model, "task": task_fingerprint})
        # The scope is hashed once; each key then costs one hash over the item text.
        prefix = f"{CACHE_VERSION}:{hashlib.sha256(scope.encode()).hexdigest()}:".encode()
        return cls(db, prefix)

    def key(self, text: str) -> str:
        digest = hashlib.sha256(self._prefix)
        digest.update(text.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """Cached answers for the keys that have one."""
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 500):  # stay under SQLite's variable limit
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, answer in self.db.execute(
                f"SELECT key, answer FROM cache WHERE key IN ({marks})", chunk
            ):
                found[key] = json.loads(answer)
        return found

    def put_many(self, entries: Iterable[tuple[str, Any]]) -> None:
        rows = [(k, json.dumps(v, ensure_ascii=False), time.time()) for k, v in entries]
        if rows:
            self.db.executemany("INSERT OR REPLACE INTO cache VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        self.db.close()
