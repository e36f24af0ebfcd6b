"""Parquet in and out, through pyarrow (``pip install 'llmbatch[parquet]'``).

Read in record batches and written in row groups, so memory holds a batch,
not the file. The output schema comes from the task's answer schema (and the
declared types of the writer's extra columns), not from the first rows, so a
column that starts with nulls keeps its type. Found by ``_io.FORMATS``, which
imports this module on first use, so pyarrow loads only for Parquet files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

from .._exceptions import UsageError
from .._task import Task
from .._types import Result
from ._base import Reader, Record, Row, Writer, answer_columns

__all__ = ["ParquetReader", "ParquetWriter"]

BATCH_ROWS = 4096


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise UsageError("Parquet needs pyarrow: pip install 'llmbatch[parquet]'") from None
    return pyarrow


class ParquetReader(Reader):
    def __iter__(self) -> Iterator[Record]:
        pa = _pyarrow()
        try:
            handle = pa.parquet.ParquetFile(self.path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise UsageError(f"cannot read {self.path} as Parquet: {exc}") from None
        index = 0
        for batch in handle.iter_batches(batch_size=BATCH_ROWS):
            for row in batch.to_pylist():
                yield Record(index, index, row)
                index += 1


_ARROW_TYPES = {"string": "string", "number": "float64", "integer": "int64", "boolean": "bool_"}


class ParquetWriter(Writer):
    def __init__(self, path: Path, task: Task, extra_columns: Mapping[str, str] | None = None) -> None:
        if str(path) == "-":
            # Parquet's footer is written last and read first: it needs a file, not a pipe.
            raise UsageError(
                "Parquet cannot go to standard output; pass --out FILE.parquet or another format"
            )
        super().__init__(path, task, extra_columns)

    def _schema(self) -> Any:
        pa = _pyarrow()
        fields = [pa.field("id", pa.string())]
        props = self.task.item_schema.get("properties", {}) if not self.task.is_text else {}
        for column in answer_columns(self.task):
            name = column.removeprefix("answer_") if column.removeprefix("answer_") in props else column
            kind = props.get(name, {}).get("type", "string")
            kinds = [k for k in (kind if isinstance(kind, list) else [kind]) if k != "null"]
            arrow = _ARROW_TYPES.get(kinds[0], "string") if len(kinds) == 1 else "string"
            fields.append(pa.field(column, getattr(pa, arrow)()))
        fields += [pa.field("status", pa.string()), pa.field("error", pa.string())]
        fields += [
            pa.field(name, getattr(pa, _ARROW_TYPES[kind])()) for name, kind in self.extra_columns.items()
        ]
        return pa.schema(fields)

    def write(self, results: Iterable[Result | Row]) -> int:
        pa = _pyarrow()
        schema = self._schema()
        simple = {f.name for f in schema if f.type in (pa.float64(), pa.int64(), pa.bool_())}
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        rows_iter = self.rows(results)
        try:
            with pa.parquet.ParquetWriter(tmp, schema) as out:
                while chunk := list(islice(rows_iter, BATCH_ROWS)):
                    rows = [_cells(row, simple) for row in chunk]
                    out.write_table(pa.Table.from_pylist(rows, schema=schema))
                    count += len(rows)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        return count


def _cells(row: dict[str, Any], simple: set[str]) -> dict[str, Any]:
    """Nested values as JSON text; typed columns keep their values (or null)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict | list) or (
            key not in simple and value is not None and not isinstance(value, str)
        ):
            value = json.dumps(value, ensure_ascii=False)
        out[key] = value
    return out
