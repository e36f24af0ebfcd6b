"""Records into the job's store: ids, rendered inputs and their content hashes, once per job.

A record that cannot be read, has no id where the task names an id field, or
cannot be rendered is stored as failed with its reason (it never reaches a
provider); the rest are pending. Duplicate ids fail all but their first record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from ._exceptions import ItemError
from ._io import Record
from ._store import FAILED, PENDING, JobStore
from ._task import Task

__all__ = ["ingest", "record_id"]


def record_id(task: Task, record: Record) -> tuple[str, str]:
    """(id, problem) for a record; the id falls back to the record's line number."""
    fallback = str(record.line)
    if record.fields is None:
        return fallback, ""
    field_name = task.id or "id"
    value = record.fields.get(field_name)
    if value is None or value == "":
        if task.id:
            return fallback, f"record has no id field {task.id!r}"
        return fallback, ""
    return (value if isinstance(value, str) else str(value)), ""


def _ingest_rows(task: Task, records: Iterable[Record]) -> Iterator[tuple[Any, ...]]:
    for record in records:
        item_id, problem = record_id(task, record)
        if record.fields is None or problem:
            yield (record.index, item_id, None, None, FAILED, record.error or problem, "input")
            continue
        try:
            text = task.render_input(record.fields)
        except ItemError as exc:
            yield (record.index, item_id, None, None, FAILED, str(exc), exc.kind)
            continue
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        yield (record.index, item_id, text, digest, PENDING, "", "")


def ingest(store: JobStore, task: Task, records: Iterable[Record], chunk: int = 5000) -> list[str]:
    """Stream records into the store (once per job); returns warnings about duplicate ids."""
    if store.get_meta("ingested") is not None:
        return []
    rows = _ingest_rows(task, records)
    while True:
        batch = [row for _, row in zip(range(chunk), rows, strict=False)]
        if not batch:
            break
        store.add_items(batch)
    dupes = store.fail_duplicate_ids()
    store.set_meta("ingested", True)
    return [f"duplicate id {d[0]!r} at record {d[2]} (first at record {d[1]}): failed" for d in dupes]
