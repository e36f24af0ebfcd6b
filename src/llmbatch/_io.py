"""Streaming readers and writers (JSONL, CSV).

Readers yield one ``Record`` per input record, never a list: memory does not
grow with the file. A record that cannot be read (bad JSON, bad bytes, ragged
CSV row) is still yielded, with ``error`` set, so it becomes a failed row
instead of a gap. Writers write to a temporary file and rename it into place,
so an output file is either complete or absent.
"""

from __future__ import annotations

import csv
import io
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

from ._exceptions import UsageError
from ._task import Task
from ._types import Result

__all__ = ["READERS", "WRITERS", "Record", "open_reader", "open_writer", "output_row"]

RESERVED = ("id", "status", "error")


@dataclass(frozen=True, slots=True)
class Record:
    """One input record: its position, line, fields, or why it could not be read."""

    index: int
    line: int
    fields: dict[str, Any] | None
    error: str = ""


class Reader(ABC):
    suffixes: ClassVar[tuple[str, ...]]

    def __init__(self, path: Path) -> None:
        self.path = path

    @abstractmethod
    def __iter__(self) -> Iterator[Record]: ...


class JsonlReader(Reader):
    suffixes = (".jsonl", ".ndjson", ".json")

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
    suffixes = (".csv",)

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


READERS: dict[str, type[Reader]] = {"jsonl": JsonlReader, "csv": CsvReader}
"""Formats by name; Parquet joins below, once the base classes exist."""


def _format_of(path: Path, explicit: str | None, registry: dict[str, Any], what: str) -> str:
    if explicit:
        if explicit not in registry:
            raise UsageError(f"unknown {what} format {explicit!r}; choose from {', '.join(registry)}")
        return explicit
    if str(path) == "-":
        return "jsonl"
    suffix = path.suffix.lower()
    for name, cls in registry.items():
        if suffix in cls.suffixes:
            return name
    raise UsageError(
        f"cannot tell the format of {path} from its name; use .jsonl, .csv or .parquet, "
        f"or pass --{what}-format"
    )


def open_reader(path: str | Path, fmt: str | None = None) -> Reader:
    """A streaming reader for ``path`` (``-`` is standard input, JSONL)."""
    path = Path(path)
    if str(path) != "-" and not path.exists():
        raise UsageError(f"input file {path} not found")
    return READERS[_format_of(path, fmt, READERS, "input")](path)


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


class Writer(ABC):
    suffixes: ClassVar[tuple[str, ...]]

    def __init__(self, path: Path, task: Task) -> None:
        self.path = path
        self.task = task

    @abstractmethod
    def write(self, results: Iterable[Result]) -> int:
        """Write every result, in order; returns the number of rows."""


class JsonlWriter(Writer):
    suffixes = (".jsonl", ".ndjson", ".json")

    def write(self, results: Iterable[Result]) -> int:
        with _atomic(self.path, newline=None) as out:
            count = 0
            for result in results:
                out.write(json.dumps(output_row(self.task, result), ensure_ascii=False))
                out.write("\n")
                count += 1
        return count


class CsvWriter(Writer):
    suffixes = (".csv",)

    def write(self, results: Iterable[Result]) -> int:
        columns = ["id", *answer_columns(self.task), "status", "error"]
        with _atomic(self.path, newline="") as out:
            writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            count = 0
            for result in results:
                row = output_row(self.task, result)
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


WRITERS: dict[str, type[Writer]] = {"jsonl": JsonlWriter, "csv": CsvWriter}

from ._parquet import ParquetReader, ParquetWriter  # noqa: E402 - needs Reader/Writer defined above

READERS["parquet"] = ParquetReader
WRITERS["parquet"] = ParquetWriter


def open_writer(path: str | Path, task: Task, fmt: str | None = None) -> Writer:
    path = Path(path)
    return WRITERS[_format_of(path, fmt, WRITERS, "output")](path, task)
