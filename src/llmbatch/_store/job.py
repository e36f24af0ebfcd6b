"""The SQLite job store: every record's state, every request, the job's config.

One file per job (``<job dir>/job.sqlite``) in WAL mode, so ``status`` can
read while the job writes. The outcome of one request — its items' answers,
retries and failures, its usage and cost — is committed in one transaction
(``record_request``): a crash loses at most the requests in flight, and those
items are still ``pending`` and are sent again on resume.

Migrations are numbered functions; the ``migrations`` table records which ran.

Why one module: the schema, its migrations and every write are one contract (one
transaction per request), which holds only while one class owns all the SQL that changes
the file. The queries the views make are in ``reads.py``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .._types import FailureKind, ItemStatus, Result, ResultStatus, duplicate_id_error

__all__ = ["BatchRow", "ItemUpdate", "JobStore", "PendingItem", "RequestRow"]

PENDING, DONE, FAILED = ItemStatus.PENDING, ItemStatus.DONE, ItemStatus.FAILED
"""Short names of the ``ItemStatus`` members, for the modules that import them from here."""


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Run statements one by one: ``executescript`` would commit the migration's transaction."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _m001_initial(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE items (
            idx INTEGER PRIMARY KEY,       -- position in the input
            id TEXT NOT NULL,
            text TEXT,                     -- rendered input, NULL when unreadable
            input_hash TEXT,
            status TEXT NOT NULL,          -- pending | done | failed
            attempts INTEGER NOT NULL DEFAULT 0,
            answer TEXT,                   -- JSON
            error TEXT NOT NULL DEFAULT '',
            error_kind TEXT NOT NULL DEFAULT '',
            cost REAL,
            from_cache INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX items_status ON items (status, idx);
        CREATE INDEX items_id ON items (id);
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            started REAL NOT NULL,
            finished REAL NOT NULL,
            keys TEXT NOT NULL,            -- JSON list of item positions
            size INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            status TEXT NOT NULL,          -- ok | error
            error_kind TEXT NOT NULL DEFAULT '',
            error TEXT NOT NULL DEFAULT '',
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cached_tokens INTEGER NOT NULL DEFAULT 0,
            latency REAL,
            cost REAL,
            items_ok INTEGER NOT NULL DEFAULT 0
        );
        """,
    )


def _m002_batches(db: sqlite3.Connection) -> None:
    """Provider batches (``--mode batch``): recorded before waiting, so a restart re-attaches."""
    _run_script(
        db,
        """
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            provider TEXT NOT NULL,
            provider_batch_id TEXT,        -- NULL until the provider accepted the batch
            status TEXT NOT NULL,          -- submitting | submitted | processed | abandoned
            submitted REAL NOT NULL,       -- Unix time
            finished REAL,
            requests INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            packs TEXT NOT NULL,           -- JSON {custom_id: {"items": [[position, transient, boosted]],
                                           --       "failures": n}}
            provider_status TEXT NOT NULL DEFAULT '',
            error TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX batches_status ON batches (status)
        """,
    )


def _m003_id_values(db: sqlite3.Connection) -> None:
    """Ids keep their JSON value (the number 1 is not the string "1"); line-number ids are marked."""
    # id_json: the JSON of a non-string id (NULL for strings); id_fallback: 1 when the id is the
    # line number. (No SQL comments inside ADD COLUMN: SQLite copies them into the table's schema.)
    _run_script(
        db,
        """
        ALTER TABLE items ADD COLUMN id_json TEXT;
        ALTER TABLE items ADD COLUMN id_fallback INTEGER NOT NULL DEFAULT 0
        """,
    )


def _m004_cache_writes(db: sqlite3.Connection) -> None:
    """Prompt tokens each request wrote to the provider's cache (Anthropic charges them)."""
    _run_script(db, "ALTER TABLE requests ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0")


MIGRATIONS: Sequence[Callable[[sqlite3.Connection], None]] = (
    _m001_initial,
    _m002_batches,
    _m003_id_values,
    _m004_cache_writes,
)

ItemRow = tuple[int, str, str | None, int, str | None, str | None, ItemStatus, str, str]
"""(idx, id, id_json, id_fallback, text, input_hash, status, error, error_kind): one ingested record."""
_ITEM_COLUMNS = "idx, id, id_json, id_fallback, text, input_hash, status, error, error_kind"


class PendingItem(NamedTuple):
    """An item still to be answered, as the planner takes it from the store."""

    position: int
    """Its place in the input (the store's ``idx``)."""
    id: str
    text: str
    """The rendered input sent for it."""
    attempts: int
    """Answer attempts already used (a resumed job keeps them)."""


@dataclass(frozen=True, slots=True)
class ItemUpdate:
    """A change to one item, applied inside a request's transaction."""

    index: int
    status: ItemStatus
    attempts: int
    answer: Any = None
    error: str = ""
    error_kind: str = ""
    """A ``FailureKind`` when ``status`` is failed."""
    cost: float | None = None


@dataclass(frozen=True, slots=True)
class RequestRow:
    started: float
    finished: float
    keys: Sequence[int]
    attempt: int
    status: str
    error_kind: str = ""
    error: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    latency: float | None = None
    cost: float | None = None
    items_ok: int = 0


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One provider batch of the job (``--mode batch``)."""

    id: int
    provider: str
    provider_batch_id: str | None
    status: str
    submitted: float
    packs: dict[str, Any]


# -- provider batches (--mode batch) ---------------------------------------------------
# Statuses: submitting (recorded, not yet accepted) → submitted (has a provider id) →
# processed (its results committed) | abandoned (never accepted: its items are pending).

OPEN_BATCH = ("submitting", "submitted")


def _batch_row(row: tuple[Any, ...]) -> BatchRow:
    return BatchRow(
        id=row[0],
        provider=row[1],
        provider_batch_id=row[2],
        status=row[3],
        submitted=row[4],
        packs=json.loads(row[5]),
    )


class _BatchTable:
    """The ``batches`` table, mixed into JobStore."""

    db: sqlite3.Connection

    def insert_batch(self, provider: str, packs: dict[str, Any], requests: int, size: int) -> int:
        """Record a batch about to be submitted (inside the caller's transaction); returns its id."""
        cursor = self.db.execute(
            "INSERT INTO batches (provider, status, submitted, requests, bytes, packs)"
            " VALUES (?, 'submitting', ?, ?, ?, ?)",
            (provider, time.time(), requests, size, json.dumps(packs)),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def batch_submitted(self, batch: int, provider_batch_id: str) -> None:
        self.db.execute(
            "UPDATE batches SET provider_batch_id = ?, status = 'submitted' WHERE id = ?",
            (provider_batch_id, batch),
        )

    def finish_batch(self, batch: int, status: str, provider_status: str = "", error: str = "") -> None:
        """Close a batch (inside the caller's transaction, with its items' outcomes)."""
        self.db.execute(
            "UPDATE batches SET status = ?, finished = ?, provider_status = ?, error = ? WHERE id = ?",
            (status, time.time(), provider_status, error[:500], batch),
        )

    def open_batches(self) -> list[BatchRow]:
        """Batches recorded but not processed yet, oldest first."""
        rows = self.db.execute(
            "SELECT id, provider, provider_batch_id, status, submitted, packs FROM batches"
            " WHERE status IN (?, ?) ORDER BY id",
            OPEN_BATCH,
        ).fetchall()
        return [_batch_row(row) for row in rows]

    def pending_at(self, positions: Sequence[int]) -> list[PendingItem]:
        """The pending items among ``positions``."""
        out: list[PendingItem] = []
        for start in range(0, len(positions), 500):
            chunk = list(positions[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            out += map(
                PendingItem._make,
                self.db.execute(
                    f"SELECT idx, id, text, attempts FROM items WHERE status = ? AND idx IN ({marks})",
                    (ItemStatus.PENDING, *chunk),
                ),
            )
        return out


class JobStore(_BatchTable):
    """The job's SQLite file. ``JobStore.open(job_dir)``; close with ``close()``."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, job_dir: str | Path, *, readonly: bool = False) -> JobStore:
        job_dir = Path(job_dir)
        path = job_dir / "job.sqlite"
        if readonly:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            job_dir.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode is durable against process crashes (kill -9);
            # only an OS crash can lose the last transactions.
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        store = cls(db, path)
        if not readonly:
            store._migrate()
        return store

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS migrations (id INTEGER PRIMARY KEY, name TEXT, applied REAL)"
        )
        done = {row[0] for row in self.db.execute("SELECT id FROM migrations")}
        for number, migration in enumerate(MIGRATIONS, start=1):
            if number in done:
                continue
            with self.transaction():
                migration(self.db)
                self.db.execute(
                    "INSERT INTO migrations VALUES (?, ?, ?)",
                    (number, migration.__name__, time.time()),
                )

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return _Transaction(self.db)

    # -- meta ------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    # -- items -----------------------------------------------------------------

    def add_items(self, rows: Iterable[ItemRow], *, staging: bool = False) -> None:
        """Insert ``ItemRow`` rows, skipping known positions (into the staging table if ``staging``)."""
        table = "staged" if staging else "items"
        with self.transaction():
            self.db.executemany(
                f"INSERT OR IGNORE INTO {table} ({_ITEM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )

    # A resumed job reads its input into a private table first: only once the whole input
    # is read is it known whether it is the job's (drop it) or another (it becomes the job).

    def begin_staging(self) -> None:
        self.db.execute(f"CREATE TEMP TABLE IF NOT EXISTS staged ({_ITEM_COLUMNS}, PRIMARY KEY (idx))")
        self.db.execute("DELETE FROM staged")

    def end_staging(self) -> None:
        self.db.execute("DROP TABLE IF EXISTS temp.staged")

    def adopt_staged(self) -> None:
        """The staged records become the job's items (after ``start_over``)."""
        with self.transaction():
            self.db.execute(f"INSERT INTO items ({_ITEM_COLUMNS}) SELECT {_ITEM_COLUMNS} FROM staged")
        self.end_staging()

    def rename_colliding_fallback_ids(self) -> int:
        """A line-number id that equals a record's own id becomes ``line-N``; returns how many.

        A record without an id must never take (and so fail) the id of a record that has one.
        """
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE items SET id = 'line-' || id, id_json = NULL WHERE id_fallback = 1 AND EXISTS"
                " (SELECT 1 FROM items AS own WHERE own.id_fallback = 0 AND own.id = items.id"
                " AND own.id_json IS items.id_json)"
            )
        return cursor.rowcount

    def fail_duplicate_ids(self) -> list[tuple[str, int, int]]:
        """Fail every later record that repeats an earlier id; returns (id, first, again) lines.

        Ids are equal when their JSON values are: the number 1 and the string "1" are two ids.
        """
        dupes = self.db.execute(
            "SELECT later.id, MIN(first.idx), later.idx FROM items AS later"
            " JOIN items AS first ON first.id = later.id AND first.id_json IS later.id_json"
            " AND first.idx < later.idx"
            " WHERE later.error_kind != ? GROUP BY later.idx ORDER BY later.idx",
            (FailureKind.DUPLICATE_ID,),
        ).fetchall()
        with self.transaction():
            self.db.executemany(
                "UPDATE items SET status = ?, error = ?, error_kind = ? WHERE idx = ?",
                [
                    (
                        ItemStatus.FAILED,
                        duplicate_id_error(d[0], d[1]),
                        FailureKind.DUPLICATE_ID,
                        d[2],
                    )
                    for d in dupes
                ],
            )
        return [(d[0], d[1], d[2]) for d in dupes]

    def escalate(self, kinds: tuple[str, ...], field: str | None, below: float | None) -> int:
        """Make items pending again for the next model of a cascade; returns how many.

        Failed items of the given kinds (the model could not answer them), and —
        when ``field`` is set — answered items whose ``field`` is below ``below``.
        """
        marks = ",".join("?" * len(kinds))
        with self.transaction():
            cursor = self.db.execute(
                f"UPDATE items SET status = ?, attempts = 0, answer = NULL, error = '', error_kind = ''"
                f" WHERE status = ? AND error_kind IN ({marks})",
                (ItemStatus.PENDING, ItemStatus.FAILED, *kinds),
            )
            changed = cursor.rowcount
            if field is not None and below is not None:
                cursor = self.db.execute(
                    "UPDATE items SET status = ?, attempts = 0, answer = NULL"
                    " WHERE status = ? AND json_extract(answer, ?) < ?",
                    (ItemStatus.PENDING, ItemStatus.DONE, f"$.{field}", below),
                )
                changed += cursor.rowcount
        return changed

    def retry_failed(self, kinds: Iterable[str]) -> dict[str, int]:
        """Make failed items of these kinds pending again (a fresh set of attempts); counts by kind."""
        kinds = tuple(kinds)
        marks = ",".join("?" * len(kinds))
        with self.transaction():
            counts = dict(
                self.db.execute(
                    f"SELECT error_kind, COUNT(*) FROM items WHERE status = ? AND error_kind IN ({marks})"
                    " GROUP BY error_kind",
                    (ItemStatus.FAILED, *kinds),
                ).fetchall()
            )
            if counts:
                self.db.execute(
                    f"UPDATE items SET status = ?, attempts = 0, answer = NULL, error = '', error_kind = ''"
                    f" WHERE status = ? AND error_kind IN ({marks})",
                    (ItemStatus.PENDING, ItemStatus.FAILED, *kinds),
                )
        return counts

    def start_over(self) -> None:
        """Forget every record, request, batch and meta key (the job's lock file stays)."""
        with self.transaction():
            for table in ("items", "requests", "batches", "meta"):
                self.db.execute(f"DELETE FROM {table}")

    def pending(self, after: int = -1, limit: int = 1000) -> list[PendingItem]:
        """The next pending items after position ``after``, in input order."""
        rows = self.db.execute(
            "SELECT idx, id, text, attempts FROM items WHERE status = ? AND idx > ? ORDER BY idx LIMIT ?",
            (ItemStatus.PENDING, after, limit),
        )
        return list(map(PendingItem._make, rows))

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) FROM items GROUP BY status").fetchall()
        return {status: n for status, n in rows}

    def failures_by_kind(self) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT error_kind, COUNT(*) FROM items WHERE status = ? GROUP BY error_kind",
            (ItemStatus.FAILED,),
        ).fetchall()
        return {kind or FailureKind.UNKNOWN: n for kind, n in rows}

    def results(self, stopped: str = "") -> Iterator[Result]:
        """Every item's final state, in input order, streamed.

        An item still pending (the job stopped before it was answered) is a ``stopped`` row
        of kind ``stopped`` whose error says why the job stopped and how to go on — never a gap.
        """
        cursor = self.db.execute(
            "SELECT idx, id, id_json, status, answer, error, error_kind, attempts FROM items ORDER BY idx"
        )
        unanswered = stopped or "not answered: the job stopped first; run the same command to resume"
        state: ResultStatus
        for idx, item_id, id_json, status, answer, error, kind, attempts in cursor:
            if status == ItemStatus.DONE:
                state, error, kind = "ok", "", ""
            elif status == ItemStatus.PENDING:
                # A plain str, like the kinds read from the table: Results go to the user.
                state, error, kind = "stopped", unanswered, str(FailureKind.STOPPED)
            else:
                state = "failed"
            yield Result(
                index=idx,
                id=item_id if id_json is None else json.loads(id_json),
                status=state,
                answer=None if answer is None or status != ItemStatus.DONE else json.loads(answer),
                error=error,
                error_kind=kind,
                attempts=attempts,
            )

    # -- requests ----------------------------------------------------------------

    def record_request(self, request: RequestRow, updates: Sequence[ItemUpdate]) -> None:
        """Commit one request and its items' new states together."""
        with self.transaction():
            self.insert_request(request)
            self.update_items(updates)

    def insert_request(self, request: RequestRow) -> None:
        """Add one request row (inside the caller's transaction)."""
        self.db.execute(
            "INSERT INTO requests (started, finished, keys, size, attempt, status, error_kind,"
            " error, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, latency,"
            " cost, items_ok) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request.started,
                request.finished,
                json.dumps(list(request.keys)),
                len(request.keys),
                request.attempt,
                request.status,
                request.error_kind,
                request.error,
                request.prompt_tokens,
                request.completion_tokens,
                request.cached_tokens,
                request.cache_write_tokens,
                request.latency,
                request.cost,
                request.items_ok,
            ),
        )

    def update_items(self, updates: Sequence[ItemUpdate]) -> None:
        if not updates:
            return
        self.db.executemany(
            "UPDATE items SET status = ?, attempts = ?, answer = ?, error = ?, error_kind = ?,"
            " cost = COALESCE(?, cost) WHERE idx = ?",
            [
                (
                    u.status,
                    u.attempts,
                    None if u.answer is None else json.dumps(u.answer, ensure_ascii=False),
                    u.error,
                    u.error_kind,
                    u.cost,
                    u.index,
                )
                for u in updates
            ],
        )

    def request_totals(self) -> dict[str, Any]:
        row = self.db.execute(
            "SELECT COUNT(*), SUM(status = 'ok'), SUM(prompt_tokens), SUM(completion_tokens),"
            " SUM(cached_tokens), SUM(cache_write_tokens), SUM(cost), SUM(cost IS NULL) FROM requests"
        ).fetchone()
        keys = (
            "requests",
            "ok",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "cost",
            "unpriced",
        )
        return {k: (v or 0) for k, v in zip(keys, row, strict=True)}


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on error (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def read_results(job_dir: Path) -> list[Result]:
    """Every result of the job in ``job_dir``, in input order: how a front end reads a
    finished job back (the Python API's rows, each vote pass, tune's answers)."""
    store = JobStore.open(job_dir, readonly=True)
    try:
        return list(store.results())
    finally:
        store.close()
