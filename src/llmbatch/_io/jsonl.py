"""JSON lines: one object per line in, one row per line out (``-`` is stdin / stdout)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from .._types import Result
from ._base import Reader, Record, Row, Writer, _atomic, _open_binary


class JsonlReader(Reader):
    def __iter__(self) -> Iterator[Record]:
        index = 0
        with _open_binary(self.path) as stream:
            for line_no, raw in enumerate(stream):
                if not raw.strip():
                    continue
                yield jsonl_record(index, line_no, raw)
                index += 1


def jsonl_record(index: int, line_no: int, raw: bytes) -> Record:
    """The record on one raw line (the Ray engine reads lines itself, then parses them here)."""
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


class JsonlWriter(Writer):
    def write(self, results: Iterable[Result | Row]) -> int:
        with _atomic(self.path, newline=None) as out:
            count = 0
            for row in self.rows(results):
                out.write(json.dumps(row, ensure_ascii=False))
                out.write("\n")
                count += 1
        return count
