"""CSV with a header row: each field a column in; nested answers as JSON text out."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from .._types import Result
from ._base import Reader, Record, Row, Writer, _atomic, _open_binary


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
