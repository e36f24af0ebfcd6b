"""Records into the job's store: ids, rendered inputs and their content hashes.

A record that cannot be read, has no usable id where the task names an id field,
or cannot be rendered is stored as failed with its reason (it never reaches a
provider); the rest are pending. Duplicate ids fail all but their first record.

Ids keep their JSON value: the number ``1`` and the string ``"1"`` are two ids,
and the output gives each back as it came. A record with no id (none, ``null``
or ``""``) is named by its line number, unless another record already uses that
id, in which case it is ``line-N``. A list or an object is no id: that record
fails.

Every ingest digests what it stored (each record's position, id and input
hash, or why it could not be read), so a job can tell whether the input given
to a re-run is the one it started with — for stdin and in-memory records as
well as files — and start over when it is not.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .._exceptions import ItemError, UsageError
from .._io import Record
from .._task import Task
from .._types import FailureKind, IdValue, ItemStatus
from .job import ItemRow, JobStore

__all__ = ["IdValue", "IngestReport", "ingest", "record_id"]


TEMPLATE_CHECK = 100
"""How many of the first readable records must lack a template field before it is a usage error."""

DIGEST_VERSION = b"ingest-v1\n"


def _identify(task: Task, record: Record) -> tuple[IdValue, str, bool]:
    """(id, problem, is the line-number fallback) of a record."""
    fallback = record.line + 1
    if record.fields is None:
        return fallback, "", False
    field_name = task.id or "id"
    value = record.fields.get(field_name)
    if value is None or value == "":
        if task.id:
            return fallback, f"record has no id field {task.id!r}", False
        return fallback, "", True
    if isinstance(value, dict | list):
        kind = "an object" if isinstance(value, dict) else "a list"
        return fallback, f"id field {field_name!r} is {kind}: an id must be a string or a number", False
    if isinstance(value, str | int | float | bool):
        return value, "", False
    return str(value), "", False


def record_id(task: Task, record: Record) -> tuple[IdValue, str]:
    """(id, problem) of a record; with no id, the id is its line number (1 for the first line).

    The problem is empty, or says why the record cannot be used (it becomes a failed row).
    """
    value, problem, _ = _identify(task, record)
    return value, problem


@dataclass(slots=True)
class IngestReport:
    """What an ingest found: notices for the user, and whether the job starts over."""

    notices: list[str] = field(default_factory=list)
    started_over: bool = False
    """The job had another input: its records and answers were dropped for these."""
    resumed: bool = False
    """The job had this very input: it goes on where it stopped."""


def _row(task: Task, record: Record) -> tuple[ItemRow, bool]:
    """The store row of a record, and whether its id is the line-number fallback."""
    value, problem, fallback = _identify(task, record)
    if isinstance(value, str):
        item_id, id_json = value, None
    else:
        item_id, id_json = _display(value), json.dumps(value)

    def failed(reason: str, kind: str) -> tuple[ItemRow, bool]:
        return (
            record.index,
            item_id,
            id_json,
            int(fallback),
            None,
            None,
            ItemStatus.FAILED,
            reason,
            kind,
        ), fallback

    if record.fields is None or problem:
        return failed(record.error or problem, FailureKind.INPUT)
    try:
        text = task.render_input(record.fields)
    except ItemError as exc:
        return failed(str(exc), exc.kind)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return (record.index, item_id, id_json, int(fallback), text, digest, ItemStatus.PENDING, "", ""), fallback


def _display(value: IdValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _checked(task: Task, records: Iterable[Record]) -> Iterator[Record]:
    """The records, after checking that the template's fields are in the first of them.

    A template field that none of the first readable records has is a typo in the task
    or the wrong input: one usage error before anything is stored or sent, not N failed rows.
    """
    fields = task.template_fields
    if not fields:
        yield from records
        return
    stream = iter(records)
    head = list(itertools.islice(stream, TEMPLATE_CHECK * 2))
    readable = [r.fields for r in head if r.fields is not None][:TEMPLATE_CHECK]
    if readable:
        missing = [f for f in fields if not any(f in record for record in readable)]
        if missing:
            seen = sorted({key for record in readable for key in record})
            names = ", ".join(repr(f) for f in missing)
            raise UsageError(
                f"the task's input template uses {names}, but none of the first {len(readable)} "
                f"records has {'it' if len(missing) == 1 else 'them'} (their fields: {', '.join(seen)}): "
                "fix the template or the input"
            )
    yield from head
    yield from stream


def _digest_line(row: ItemRow) -> bytes:
    """What identifies one input record: position, id (with its JSON type), content or read error."""
    content = row[5] if row[5] is not None else "!" + row[7]
    return f"{row[0]}\x1f{row[1]}\x1f{row[2]}\x1f{content}\n".encode("utf-8", "surrogatepass")


def ingest(
    store: JobStore, task: Task, records: Iterable[Record], *, unchanged: bool = False, chunk: int = 5000
) -> IngestReport:
    """Stream records into the store, or check them against the job's when it resumes.

    A new job stores every record. A job that was ingested before reads the input again
    (``unchanged`` skips that, for a file whose size and mtime are as they were) and
    compares digests: the same input resumes; another input — another stdin, another
    list of records, an edited file — starts the job over with it (saying so), so a
    re-run never returns answers that belong to another dataset.
    """
    stored = store.get_meta("input_digest")
    if stored is not None and unchanged:
        return IngestReport(resumed=True)
    hasher = hashlib.sha256(DIGEST_VERSION)
    fallbacks = 0
    staging = stored is not None or store.get_meta("ingested") is not None
    if not staging and store.counts():
        # An ingest cut short (the process died while reading the input): its rows may
        # come from another input than this one, so read this one from the start.
        store.start_over()

    def rows() -> Iterator[ItemRow]:
        nonlocal fallbacks
        for record in _checked(task, records):
            row, fallback = _row(task, record)
            fallbacks += fallback
            hasher.update(_digest_line(row))
            yield row

    stream = rows()
    if staging:
        store.begin_staging()
    while batch := list(itertools.islice(stream, chunk)):
        store.add_items(batch, staging=staging)
    digest = hasher.hexdigest()
    report = IngestReport()
    if staging:
        if digest == stored:
            store.end_staging()
            report.resumed = True
            return report
        # Another input than the job's: what it answered belongs to that one.
        store.start_over()
        store.adopt_staged()
        report.started_over = True
    store.set_meta("input_digest", digest)
    store.set_meta("ingested", True)
    if fallbacks:
        renamed = store.rename_colliding_fallback_ids()
        counted = store.counts()
        every = fallbacks == sum(counted.values())
        field_name = task.id or "id"
        which = "no record has" if every else f"{fallbacks:,} records have no"
        report.notices.append(
            f"{which} {field_name!r} field: their ids are their line numbers (1 = the first line)"
            + (f"; {renamed:,} that another record already uses are line-N" if renamed else "")
        )
    dupes = store.fail_duplicate_ids()
    report.notices += [
        f"duplicate id {d[0]!r} at record {d[2]} (first at record {d[1]}): failed" for d in dupes
    ]
    return report
