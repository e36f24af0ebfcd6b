"""What every format shares: the record read in, the row written out, and the atomic file.

A record that cannot be read (bad JSON, bad bytes, ragged CSV row) is still a
``Record``, with ``error`` set, so it becomes a failed row instead of a gap. A
writer writes to ``<path>.tmp`` and renames it into place, so an output file is
either complete or absent.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .._exceptions import UsageError
from .._task import Task
from .._types import Result

RESERVED = ("id", "status", "error")

COLUMN_TYPES = ("string", "number", "integer", "boolean")
"""The JSON Schema types an extra output column may declare."""


@dataclass(frozen=True, slots=True)
class Record:
    """One input record: its position, line, fields, or why it could not be read."""

    index: int
    line: int
    fields: dict[str, Any] | None
    error: str = ""


class Reader(ABC):
    def __init__(self, path: Path) -> None:
        self.path = path

    @abstractmethod
    def __iter__(self) -> Iterator[Record]: ...


class _StdinBinary:
    """Standard input as a context-managed binary stream that is not closed on exit."""

    def __enter__(self) -> IO[bytes]:
        import sys

        return sys.stdin.buffer

    def __exit__(self, *exc: object) -> None:
        return None


def _open_binary(path: Path) -> Any:
    if str(path) == "-":
        return _StdinBinary()
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise UsageError(f"input file {path} not found") from None
    except OSError as exc:
        raise UsageError(f"cannot open input file {path}: {exc.strerror}") from None


def output_row(task: Task, result: Result) -> dict[str, Any]:
    """The output row of one result: id, the answer's fields (or ``text``), status, error."""
    row: dict[str, Any] = {"id": result.id}
    answer = result.answer
    if task.is_text:
        row["text"] = answer
    elif isinstance(answer, dict):
        for key, value in answer.items():
            row[f"answer_{key}" if key in RESERVED else key] = value
    elif result.status == "ok":
        row["answer"] = answer
    else:
        for key in answer_columns(task):
            row[key] = None
    row["status"] = result.status
    row["error"] = result.error
    return row


def answer_columns(task: Task) -> list[str]:
    if task.is_text:
        return ["text"]
    props = task.item_schema.get("properties")
    if isinstance(props, dict):
        return [f"answer_{k}" if k in RESERVED else k for k in props]
    return ["answer"]


@dataclass(frozen=True, slots=True)
class Row:
    """A result with the values of its writer's extra columns.

    ``Row(result, {"agreement": 0.75, "votes": 4})``; a writer without extra
    columns takes bare ``Result``s.
    """

    result: Result
    extras: Mapping[str, Any]


class Writer(ABC):
    """Writes results as rows: ``id``, the answer's columns, ``status``, ``error``, then the extras.

    ``extra_columns`` maps each extra column's name to its JSON Schema type
    (one of ``COLUMN_TYPES``), in column order; typed formats (Parquet) store
    them with that type, even when a column starts with nulls.
    """

    def __init__(self, path: Path, task: Task, extra_columns: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.task = task
        self.extra_columns = dict(extra_columns or {})
        clash = set(self.extra_columns) & {"id", *answer_columns(task), "status", "error"}
        if clash:
            names = ", ".join(sorted(clash))
            raise UsageError(
                f"the output gains the column(s) {names}, which the task's answer fields already use; "
                "rename those fields in the task's output schema"
            )
        unknown = {name: kind for name, kind in self.extra_columns.items() if kind not in COLUMN_TYPES}
        if unknown:
            raise ValueError(f"extra output columns {unknown} need a type among {', '.join(COLUMN_TYPES)}")

    @property
    def columns(self) -> list[str]:
        """Every column, in order."""
        return ["id", *answer_columns(self.task), "status", "error", *self.extra_columns]

    def rows(self, items: Iterable[Result | Row]) -> Iterator[dict[str, Any]]:
        """The output row of each item: ``output_row`` followed by the extra columns."""
        names = self.extra_columns.keys()
        if not names:
            # The common case, and the hot one: the standard row as it is.
            for item in items:
                if isinstance(item, Row):
                    if item.extras:
                        raise ValueError(
                            f"row {item.result.id!r} carries columns {sorted(item.extras)}, not []"
                        )
                    item = item.result
                yield output_row(self.task, item)
            return
        for item in items:
            result, extras = (item.result, item.extras) if isinstance(item, Row) else (item, {})
            if extras.keys() != names:
                # A programming error, not bad input: every row must carry exactly the declared columns.
                raise ValueError(f"row {result.id!r} carries columns {sorted(extras)}, not {sorted(names)}")
            yield {**output_row(self.task, result), **{name: extras[name] for name in names}}

    @abstractmethod
    def write(self, results: Iterable[Result | Row]) -> int:
        """Write every result, in order; returns the number of rows."""


class _atomic:
    """Write to ``path.tmp`` and rename over ``path`` only when the block succeeds."""

    def __init__(self, path: Path, newline: str | None) -> None:
        self.path = path
        self.newline = newline
        self.stdout = str(path) == "-"
        self.tmp = path.with_name(path.name + ".tmp")

    def __enter__(self) -> IO[str]:
        if self.stdout:
            import sys

            self.handle = sys.stdout
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = self.tmp.open("w", encoding="utf-8", newline=self.newline)
        return self.handle

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self.stdout:
            self.handle.flush()
            return
        try:
            self.handle.close()  # flushes: a full disk may only show here
            if exc_type is None:
                os.replace(self.tmp, self.path)
        finally:
            # Never leave a truncated ``.tmp`` behind, whatever failed.
            self.tmp.unlink(missing_ok=True)
