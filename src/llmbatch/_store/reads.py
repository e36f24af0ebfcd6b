"""Read models over a job's store, for the views (``status``, ``report``) that show a job
while it runs or after: every query they need, and the only SQL on ``job.sqlite`` outside
``JobStore``.

A snapshot is the store opened read-only inside one read transaction: in WAL mode that is
a consistent view that neither waits for the running job's writes nor blocks them, so
every figure of one page comes from the same moment.

    with open_snapshot(".llmbatch/reviews-sentiment") as job:
        counts = job.item_counts()
        totals = job.request_totals()
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .._exceptions import UsageError
from .._types import FailureKind, ItemStatus
from .job import JobStore

__all__ = ["FailedItem", "JobSnapshot", "RequestRecord", "RequestTotals", "open_snapshot"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One row of the ``requests`` table (the columns the views need)."""

    started: float
    finished: float
    size: int
    status: str
    error_kind: str
    items_ok: int
    latency: float | None
    cost: float | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int


class RequestTotals(NamedTuple):
    """Every request of the job, summed."""

    requests: int
    ok: int
    """Requests answered (whatever their items' outcomes)."""
    items_answered: int
    cost: float
    unpriced: int
    """Answered requests with no cost: spend is unknown while there is one."""
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    mean_size: float | None
    first_started: float | None
    last_finished: float | None


class FailedItem(NamedTuple):
    position: int
    id: str
    kind: str
    attempts: int
    reason: str


class JobSnapshot:
    """One read transaction over a job's store; made by ``open_snapshot``."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        # A store a release before cache writes were kept has no such column, and a read-only
        # snapshot does not migrate it: read it as 0 writes.
        columns = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
        self._writes = "cache_write_tokens" if "cache_write_tokens" in columns else "0"

    def meta(self, key: str) -> Any:
        """``meta[key]`` as JSON data; None when absent or unreadable."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            return None

    def item_counts(self) -> dict[str, int]:
        """Items by status (``ItemStatus``)."""
        return dict(self._db.execute("SELECT status, COUNT(*) FROM items GROUP BY status").fetchall())

    def cached_items(self) -> int:
        """Items answered from the result cache."""
        return int(self._db.execute("SELECT COUNT(*) FROM items WHERE from_cache").fetchone()[0])

    def failures_by_kind(self) -> dict[str, int]:
        """Failed items by failure kind, the most common first."""
        return {
            kind or FailureKind.UNKNOWN: n
            for kind, n in self._db.execute(
                "SELECT error_kind, COUNT(*) FROM items WHERE status = ? GROUP BY error_kind ORDER BY 2 DESC",
                (ItemStatus.FAILED,),
            )
        }

    def failed_items(self, limit: int) -> list[FailedItem]:
        """The first ``limit`` failed items, in input order."""
        rows = self._db.execute(
            "SELECT idx, id, error_kind, attempts, error FROM items WHERE status = ? ORDER BY idx LIMIT ?",
            (ItemStatus.FAILED, limit),
        )
        return [FailedItem(*row) for row in rows]

    def request_totals(self) -> RequestTotals:
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = 'ok'), 0), COALESCE(SUM(items_ok), 0),"
            " COALESCE(SUM(cost), 0), COALESCE(SUM(status = 'ok' AND cost IS NULL), 0),"
            " COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),"
            f" COALESCE(SUM(cached_tokens), 0), COALESCE(SUM({self._writes}), 0), AVG(size),"
            " MIN(started), MAX(finished) FROM requests"
        ).fetchone()
        return RequestTotals(*row)

    def request_errors_by_kind(self) -> dict[str, int]:
        """Requests that got no answer, by error kind, the most common first."""
        return {
            kind or FailureKind.UNKNOWN: n
            for kind, n in self._db.execute(
                "SELECT error_kind, COUNT(*) FROM requests WHERE status != 'ok'"
                " GROUP BY error_kind ORDER BY 2 DESC"
            )
        }

    def items_answered_since(self, since: float) -> int:
        """Items answered by requests that finished after ``since`` (epoch seconds)."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(items_ok), 0) FROM requests WHERE finished > ?", (since,)
        ).fetchone()
        return int(row[0])

    def request_intervals(self) -> list[tuple[float, float]]:
        """(started, finished) of every request."""
        return self._db.execute("SELECT started, finished FROM requests").fetchall()

    def requests(self) -> list[RequestRecord]:
        """Every request of the job, in the order they started."""
        rows = self._db.execute(
            "SELECT started, finished, size, status, error_kind, items_ok, latency, cost,"
            f" prompt_tokens, completion_tokens, cached_tokens, {self._writes} FROM requests"
            " ORDER BY started, id"
        )
        return [RequestRecord(*row) for row in rows]


@contextmanager
def open_snapshot(job_dir: str | Path) -> Iterator[JobSnapshot]:
    """The job's store, read-only, inside one read transaction (a consistent snapshot).

    A missing job or a file that is not a job store is a ``UsageError`` with one line.
    """
    job_dir = Path(job_dir)
    if job_dir.exists() and not job_dir.is_dir():
        raise UsageError(
            f"{job_dir} is a file, not a job directory: pass the --job-dir of a job that has run"
        )
    if not job_dir.is_dir():
        raise UsageError(f"no job directory {job_dir}: pass the --job-dir of a job that has run")
    if not (job_dir / "job.sqlite").is_file():
        raise UsageError(f"{job_dir} holds no job (no job.sqlite): pass the --job-dir of a job that has run")
    try:
        store = JobStore.open(job_dir, readonly=True)
    except sqlite3.Error as exc:
        raise UsageError(f"cannot open the job store in {job_dir}: {exc}") from exc
    try:
        store.db.execute("BEGIN")
        store.db.execute("SELECT 1 FROM items, requests, meta LIMIT 0")
        yield JobSnapshot(store.db)
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{job_dir / 'job.sqlite'} is not a readable llmbatch job store: {exc}") from exc
    finally:
        if store.db.in_transaction:
            store.db.execute("ROLLBACK")
        store.close()
