"""Records in, rows out: one module per file format, and the registry that picks one.

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

A format is a module with a ``Reader`` and a ``Writer`` (``jsonl``, ``csv``,
``parquet``) and one entry in ``FORMATS``; ``open_reader`` / ``open_writer`` pick
it from the file's suffix or an explicit name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .._exceptions import UsageError
from .._task import Task
from ._base import COLUMN_TYPES, RESERVED, Reader, Record, Row, Writer, answer_columns, output_row
from .csv import CsvReader, CsvWriter
from .jsonl import JsonlReader, JsonlWriter

__all__ = [
    "COLUMN_TYPES",
    "FORMATS",
    "RESERVED",
    "Format",
    "Reader",
    "Record",
    "Row",
    "Writer",
    "answer_columns",
    "open_reader",
    "open_writer",
    "output_row",
]


def open_reader(path: str | Path, fmt: str | None = None) -> Reader:
    """A streaming reader for ``path`` (``-`` is standard input, JSONL)."""
    path = Path(path)
    if str(path) != "-" and not path.exists():
        raise UsageError(f"input file {path} not found")
    return _format_of(path, fmt, "input").reader(path)


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


@dataclass(frozen=True, slots=True)
class Format:
    """A file format: the suffixes that name it, and a loader of its reader and writer classes.

    The loader runs on first use, so a format that needs an optional extra
    (Parquet needs pyarrow) costs nothing until a file of it is opened.
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
