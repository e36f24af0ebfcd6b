"""Streaming readers and writers (JSONL, CSV; Parquet in ``_parquet``).

Readers yield one ``Record`` per input record, never a list: memory does not
grow with the file. A record that cannot be read (bad JSON, bad bytes, ragged
CSV row) is still yielded, with ``error`` set, so it becomes a failed row
instead of a gap. Writers write to a temporary file and rename it into place,
so an output file is either complete or absent.

A writer can add typed columns after the standard ones (voting adds
``agreement`` and ``votes``): name them when opening it, and hand it ``Row``s
that carry their values.

    writer = open_writer("out.csv", task, extra_columns={"agreement": "number"})
    writer.write([Row(result, {"agreement": 0.75})])
"""

from __future__ import annotations

import csv
import io
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .._exceptions import UsageError
from .._task import Task
from .._types import Result

__all__ = ["FORMATS", "Format", "Record", "Row", "open_reader", "open_writer", "output_row"]

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


class JsonlReader(Reader):
    def __iter__(self) -> Iterator[Record]:
        index = 0
        with _open_binary(self.path) as stream:
            for line_no, raw in enumerate(stream):
                if not raw.strip():
                    continue
                yield _jsonl_record(index, line_no, raw)
                index += 1


def _jsonl_record(index: int, line_no: int, raw: bytes) -> Record:
    try:
        # utf-8-sig on the first line: editors on Windows save JSONL with a BOM.
        text = raw.decode("utf-8-sig" if line_no == 0 else "utf-8")
    except UnicodeDecodeError as exc:
        return Record(index, line_no, None, f"line {line_no + 1} is not valid UTF-8 ({exc.reason})")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Record(index, line_no, None, f"line {line_no + 1} is not valid JSON: {exc.msg}")
    if not isinstance(value, dict):
        kind = type(value).__name__
        return Record(index, line_no, None, f"line {line_no + 1} is a JSON {kind}, not an object")
    return Record(index, line_no, value)


class CsvReader(Reader):
    def __iter__(self) -> Iterator[Record]:
        with _open_binary(self.path) as binary:
            # surrogateescape keeps undecodable bytes visible per field, so one
            # bad row fails alone instead of aborting the whole file.
            # utf-8-sig drops a BOM before the csv module sees it (a BOM before a
            # quoted header name would otherwise keep the quotes in the name).
            text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
            rows = csv.reader(text)
            header = next(rows, None)
            if header is None:
                return
            header = [name.strip() for name in header]
            index = 0
            start = rows.line_num  # lines read so far = the 0-based line the next row starts on
            for row in rows:
                line_no, start = start, rows.line_num
                if not row:
                    continue  # blank lines are skipped without using up a position
                yield _csv_record(index, line_no, header, row)
                index += 1


def _csv_record(index: int, line_no: int, header: list[str], row: list[str]) -> Record:
    where = f"line {line_no + 1}"
    if len(row) != len(header):
        return Record(index, line_no, None, f"{where} has {len(row)} fields, the header has {len(header)}")
    for value in row:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return Record(index, line_no, None, f"{where} is not valid UTF-8")
    return Record(index, line_no, dict(zip(header, row, strict=True)))


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


def open_reader(path: str | Path, fmt: str | None = None) -> Reader:
    """A streaming reader for ``path`` (``-`` is standard input, JSONL)."""
    path = Path(path)
    if str(path) != "-" and not path.exists():
        raise UsageError(f"input file {path} not found")
    return _format_of(path, fmt, "input").reader(path)


# -- writing -------------------------------------------------------------------


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


class JsonlWriter(Writer):
    def write(self, results: Iterable[Result | Row]) -> int:
        with _atomic(self.path, newline=None) as out:
            count = 0
            for row in self.rows(results):
                out.write(json.dumps(row, ensure_ascii=False))
                out.write("\n")
                count += 1
        return count


class CsvWriter(Writer):
    def write(self, results: Iterable[Result | Row]) -> int:
        with _atomic(self.path, newline="") as out:
            writer = csv.DictWriter(out, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            count = 0
            for row in self.rows(results):
                writer.writerow({k: _cell(v) for k, v in row.items()})
                count += 1
        return count


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


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


def open_writer(
    path: str | Path, task: Task, fmt: str | None = None, *, extra_columns: Mapping[str, str] | None = None
) -> Writer:
    """A writer for ``path`` (``-`` is standard output, JSONL), the format from ``fmt`` or the suffix.

    ``extra_columns`` (name: JSON Schema type) adds columns after ``error``; pass
    each result as a ``Row`` with their values.

        writer = open_writer("out.parquet", task, extra_columns={"votes": "integer"})
        writer.write([Row(result, {"votes": 3})])
    """
    path = Path(path)
    return _format_of(path, fmt, "output").writer(path, task, extra_columns)


# -- formats -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Format:
    """A file format: the suffixes that name it, and a loader of its reader and writer classes.

    The loader runs on first use, so a format can live in a module that builds
    on this one (``_parquet`` subclasses ``Reader`` and ``Writer``) without an
    import cycle.
    """

    suffixes: tuple[str, ...]
    load: Callable[[], tuple[type[Reader], type[Writer]]]

    @property
    def reader(self) -> type[Reader]:
        return self.load()[0]

    @property
    def writer(self) -> type[Writer]:
        return self.load()[1]


def _parquet_classes() -> tuple[type[Reader], type[Writer]]:
    from .parquet import ParquetReader, ParquetWriter

    return ParquetReader, ParquetWriter


FORMATS: dict[str, Format] = {
    "jsonl": Format((".jsonl", ".ndjson", ".json"), lambda: (JsonlReader, JsonlWriter)),
    "csv": Format((".csv",), lambda: (CsvReader, CsvWriter)),
    "parquet": Format((".parquet", ".pq"), _parquet_classes),
}
"""Formats by name, in the order error messages list them."""


def _format_of(path: Path, explicit: str | None, what: str) -> Format:
    if explicit:
        if explicit not in FORMATS:
            raise UsageError(f"unknown {what} format {explicit!r}; choose from {', '.join(FORMATS)}")
        return FORMATS[explicit]
    if str(path) == "-":
        return FORMATS["jsonl"]
    suffix = path.suffix.lower()
    for fmt in FORMATS.values():
        if suffix in fmt.suffixes:
            return fmt
    raise UsageError(
        f"cannot tell the format of {path} from its name; use .jsonl, .csv or .parquet, "
        f"or pass --{what}-format"
    )
