"""Readers stream and never drop a record; writers write whole files or nothing."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmbatch import Result, Task, UsageError
from llmbatch._io import Record, Row, open_reader, open_writer, output_row
from llmbatch._io.csv import CsvReader
from llmbatch._io.jsonl import JsonlReader

SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string"},
        "id": {"type": "string"},
        "status": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["label", "id", "status", "tags"],
}
JSON_TASK = Task(instructions="x", output=SCHEMA)
TEXT_TASK = Task(instructions="x")
INT_TASK = Task(instructions="x", output={"type": "integer"})


def write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_all(path: Path | str, fmt: str | None = None) -> list[Record]:
    return list(open_reader(path, fmt))


# -- JSONL --------------------------------------------------------------------------


def test_jsonl_records_in_order(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "in.jsonl", b'{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\n')
    records = read_all(path)
    assert records == [Record(0, 0, {"id": 1, "text": "a"}), Record(1, 1, {"id": 2, "text": "b"})]


def test_jsonl_bad_lines_become_failed_records(tmp_path: Path) -> None:
    data = b"\n".join(
        [
            b'{"text": "ok"}',
            b'{"text": "unterminated',
            b"[1, 2]",
            b'"just a string"',
            b"42",
            b'{"text": "caf\xe9"}',  # latin-1, not UTF-8
            b"null",
            b'{"text": "last"}',
        ]
    )
    records = read_all(write_bytes(tmp_path, "in.jsonl", data))
    assert [r.index for r in records] == list(range(8))
    assert [r.line for r in records] == list(range(8))
    assert records[0].fields == {"text": "ok"} and records[0].error == ""
    assert records[1].fields is None and "line 2 is not valid JSON" in records[1].error
    assert records[2].fields is None and "line 3 is a JSON list, not an object" in records[2].error
    assert "JSON str" in records[3].error
    assert "JSON int" in records[4].error
    assert records[5].fields is None and "line 6 is not valid UTF-8" in records[5].error
    assert "JSON NoneType" in records[6].error
    assert records[7].fields == {"text": "last"}


def test_jsonl_blank_lines_skipped_without_using_a_position(tmp_path: Path) -> None:
    data = b'\n{"n": 1}\n   \n\r\n{"n": 2}\n\n'
    records = read_all(write_bytes(tmp_path, "in.jsonl", data))
    assert [(r.index, r.line, r.fields) for r in records] == [(0, 1, {"n": 1}), (1, 4, {"n": 2})]


def test_jsonl_crlf_and_no_final_newline(tmp_path: Path) -> None:
    records = read_all(write_bytes(tmp_path, "in.jsonl", b'{"n": 1}\r\n{"n": 2}'))
    assert [r.fields for r in records] == [{"n": 1}, {"n": 2}]


def test_jsonl_with_bom(tmp_path: Path) -> None:
    records = read_all(write_bytes(tmp_path, "in.jsonl", b'\xef\xbb\xbf{"n": 1}\n{"n": 2}\n'))
    assert [r.fields for r in records] == [{"n": 1}, {"n": 2}]


def test_jsonl_unicode_line_separators_inside_strings(tmp_path: Path) -> None:
    text = "a\u2028b\u2029c\x85d"
    path = write_bytes(tmp_path, "in.jsonl", (json.dumps({"text": text}, ensure_ascii=False) + "\n").encode())
    assert [r.fields for r in read_all(path)] == [{"text": text}]


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.csv"])
def test_empty_file_has_no_records(tmp_path: Path, name: str) -> None:
    assert read_all(write_bytes(tmp_path, name, b"")) == []


def test_json_and_ndjson_suffixes_read_as_jsonl(tmp_path: Path) -> None:
    for name in ("in.json", "in.ndjson", "IN.JSONL"):
        assert isinstance(open_reader(write_bytes(tmp_path, name, b"{}\n")), JsonlReader)


def test_stdin_is_jsonl(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BytesIO(b'{"n": 1}\n{"n": 2}\n'))
    monkeypatch.setattr(sys, "stdin", fake)
    assert [r.fields for r in read_all("-")] == [{"n": 1}, {"n": 2}]
    assert not fake.closed  # standard input is not ours to close


# -- streaming -------------------------------------------------------------------------


def test_readers_are_lazy_iterators(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "in.jsonl", b'{"n": 1}\n')
    assert isinstance(iter(open_reader(path)), types.GeneratorType)
    # Opening a reader reads nothing: a file removed before iterating fails only then.
    reader = open_reader(path)
    path.unlink()
    with pytest.raises(UsageError, match="not found"):
        next(iter(reader))


@pytest.mark.parametrize(
    ("name", "head"),
    [("pipe.jsonl", b'{"text": "first"}\n'), ("pipe.csv", b"text\nfirst\n")],
)
def test_first_record_arrives_before_the_input_ends(tmp_path: Path, name: str, head: bytes) -> None:
    """A reader that read the whole input first would block here: the pipe never ends until we say so."""
    path = tmp_path / name
    os.mkfifo(path)
    release = threading.Event()

    def producer() -> None:
        with path.open("wb", buffering=0) as pipe:
            pipe.write(head)
            release.wait(10)

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    got: list[Record] = []
    reader_iter: Iterator[Record] = iter(open_reader(path))
    consumer = threading.Thread(target=lambda: got.append(next(reader_iter)), daemon=True)
    consumer.start()
    try:
        consumer.join(5)
        arrived = list(got)  # before the pipe is closed
    finally:
        release.set()
        thread.join(5)
    assert arrived and arrived[0].fields == {"text": "first"}
    consumer.join(5)
    list(reader_iter)  # drain and close


# -- CSV ---------------------------------------------------------------------------


def test_csv_records(tmp_path: Path) -> None:
    data = b'id,text\n1,hello\n2,"multi\nline, with comma"\n3,"say ""hi"""\n'
    records = read_all(write_bytes(tmp_path, "in.csv", data))
    assert [r.fields for r in records] == [
        {"id": "1", "text": "hello"},
        {"id": "2", "text": "multi\nline, with comma"},
        {"id": "3", "text": 'say "hi"'},
    ]
    assert [r.index for r in records] == [0, 1, 2]
    assert [r.line for r in records] == [1, 2, 4]  # the line each row starts on


def test_csv_ragged_rows_fail_alone(tmp_path: Path) -> None:
    data = b"id,text\n1,a\n2\n3,c,extra\n4,d\n"
    records = read_all(write_bytes(tmp_path, "in.csv", data))
    assert [r.index for r in records] == [0, 1, 2, 3]
    assert records[0].fields == {"id": "1", "text": "a"}
    assert records[1].fields is None and records[1].error == "line 3 has 1 fields, the header has 2"
    assert records[2].fields is None and "3 fields" in records[2].error
    assert records[3].fields == {"id": "4", "text": "d"}


def test_csv_blank_lines_skipped_without_using_a_position(tmp_path: Path) -> None:
    records = read_all(write_bytes(tmp_path, "in.csv", b"id,text\n1,a\n\n\n2,b\n"))
    assert [(r.index, r.fields) for r in records] == [
        (0, {"id": "1", "text": "a"}),
        (1, {"id": "2", "text": "b"}),
    ]
    assert [r.line for r in records] == [1, 4]


@pytest.mark.parametrize("header", [b"\xef\xbb\xbfid,text\n", b'\xef\xbb\xbf"id","text"\n', b" id , text \n"])
def test_csv_header_bom_quotes_and_spaces(tmp_path: Path, header: bytes) -> None:
    records = read_all(write_bytes(tmp_path, "in.csv", header + b"1,a\n"))
    assert records[0].fields == {"id": "1", "text": "a"}


def test_csv_non_utf8_row_fails_alone(tmp_path: Path) -> None:
    data = b"id,text\n1,caf\xe9\n2,caf\xc3\xa9\n"
    records = read_all(write_bytes(tmp_path, "in.csv", data))
    assert records[0].fields is None and records[0].error == "line 2 is not valid UTF-8"
    assert records[1].fields == {"id": "2", "text": "café"}


def test_csv_header_only(tmp_path: Path) -> None:
    assert read_all(write_bytes(tmp_path, "in.csv", b"id,text\n")) == []


def test_csv_reader_by_explicit_format(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "data.txt", b"text\nhello\n")
    assert isinstance(open_reader(path, "csv"), CsvReader)
    assert read_all(path, "csv")[0].fields == {"text": "hello"}


# -- opening ---------------------------------------------------------------------------


def test_missing_input_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"input file .*nope\.jsonl not found"):
        open_reader(tmp_path / "nope.jsonl")


def test_unreadable_input_is_usage_error(tmp_path: Path) -> None:
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    with pytest.raises(UsageError, match="cannot open input file"):
        read_all(folder)


@pytest.mark.parametrize("name", ["in.txt", "in", "in.parquet.gz"])
def test_unknown_input_extension(tmp_path: Path, name: str) -> None:
    path = write_bytes(tmp_path, name, b"{}\n")
    with pytest.raises(UsageError, match="--input-format"):
        open_reader(path)


def test_unknown_explicit_format(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "in.jsonl", b"{}\n")
    with pytest.raises(UsageError, match="unknown input format 'xml'; choose from jsonl, csv"):
        open_reader(path, "xml")


# -- writing ---------------------------------------------------------------------------


OK = Result(0, "a", "ok", {"label": "pos", "id": "X1", "status": "fine", "tags": ["t", "é"]}, attempts=1)
FAILED = Result(1, "b", "failed", None, error="answer missing", error_kind="missing", attempts=3)


def test_output_row_renames_reserved_answer_fields() -> None:
    row = output_row(JSON_TASK, OK)
    assert row == {
        "id": "a",
        "label": "pos",
        "answer_id": "X1",
        "answer_status": "fine",
        "tags": ["t", "é"],
        "status": "ok",
        "error": "",
    }


def test_output_row_failed_has_empty_answer_columns() -> None:
    row = output_row(JSON_TASK, FAILED)
    assert row == {
        "id": "b",
        "label": None,
        "answer_id": None,
        "answer_status": None,
        "tags": None,
        "status": "failed",
        "error": "answer missing",
    }


def test_output_row_text_and_scalar_answers() -> None:
    assert output_row(TEXT_TASK, Result(0, "a", "ok", "hola")) == {
        "id": "a",
        "text": "hola",
        "status": "ok",
        "error": "",
    }
    assert output_row(TEXT_TASK, Result(0, "a", "failed", None, error="e"))["text"] is None
    assert output_row(INT_TASK, Result(0, "a", "ok", 7))["answer"] == 7
    assert output_row(INT_TASK, Result(0, "a", "failed", None, error="e")) == {
        "id": "a",
        "answer": None,
        "status": "failed",
        "error": "e",
    }


def test_jsonl_writer(tmp_path: Path) -> None:
    path = tmp_path / "out" / "result.jsonl"
    count = open_writer(path, JSON_TASK).write(iter([OK, FAILED]))
    assert count == 2
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [output_row(JSON_TASK, OK), output_row(JSON_TASK, FAILED)]
    assert "é" in lines[0]  # written as UTF-8, not \u-escaped
    assert not (tmp_path / "out" / "result.jsonl.tmp").exists()


def test_csv_writer(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    assert open_writer(path, JSON_TASK).write([OK, FAILED]) == 2
    with path.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["id", "label", "answer_id", "answer_status", "tags", "status", "error"]
    assert rows[1] == ["a", "pos", "X1", "fine", '["t", "é"]', "ok", ""]
    assert rows[2] == ["b", "", "", "", "", "failed", "answer missing"]


def test_csv_writer_text_task_with_awkward_text(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    awkward = 'line one\nline "two", with comma'
    open_writer(path, TEXT_TASK).write([Result(0, "a", "ok", awkward)])
    with path.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert rows == [{"id": "a", "text": awkward, "status": "ok", "error": ""}]


def test_csv_writer_scalar_answer(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    open_writer(path, INT_TASK).write([Result(0, "a", "ok", 7), Result(1, "b", "failed", None, error="x")])
    with path.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert rows == [
        {"id": "a", "answer": "7", "status": "ok", "error": ""},
        {"id": "b", "answer": "", "status": "failed", "error": "x"},
    ]


@pytest.mark.parametrize("name", ["out.jsonl", "out.csv"])
def test_writers_are_atomic(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("previous complete output\n", encoding="utf-8")

    def results() -> Iterator[Result]:
        yield OK
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError, match="crash"):
        open_writer(path, JSON_TASK).write(results())
    assert path.read_text(encoding="utf-8") == "previous complete output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_failed_write_of_a_new_file_leaves_nothing(tmp_path: Path) -> None:
    def results() -> Iterator[Result]:
        raise RuntimeError("boom")
        yield OK  # pragma: no cover

    with pytest.raises(RuntimeError):
        open_writer(tmp_path / "new.jsonl", JSON_TASK).write(results())
    assert list(tmp_path.iterdir()) == []


def test_write_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert open_writer("-", TEXT_TASK, "jsonl").write([Result(0, "a", "ok", "hola")]) == 1
    assert json.loads(capsys.readouterr().out) == {"id": "a", "text": "hola", "status": "ok", "error": ""}


@pytest.mark.parametrize("name", ["out.txt", "out", "out.xlsx"])
def test_unknown_output_extension(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="--output-format"):
        open_writer(tmp_path / name, JSON_TASK)


def test_explicit_output_format(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    open_writer(path, TEXT_TASK, "csv").write([Result(0, "a", "ok", "x")])
    assert path.read_text(encoding="utf-8").splitlines()[0] == "id,text,status,error"
    with pytest.raises(UsageError, match="unknown output format"):
        open_writer(path, TEXT_TASK, "xlsx")


def _roundtrip_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_writer_keeps_input_order(tmp_path: Path) -> None:
    results = [Result(i, f"id{i}", "ok", f"t{i}") for i in range(50)]
    path = tmp_path / "out.jsonl"
    open_writer(path, TEXT_TASK).write(results)
    assert [row["id"] for row in _roundtrip_rows(path)] == [f"id{i}" for i in range(50)]


# -- extra columns -----------------------------------------------------------------

VOTES = {"agreement": "number", "votes": "integer"}
VOTED = [Row(FAILED, {"agreement": None, "votes": 0}), Row(OK, {"agreement": 0.6667, "votes": 3})]


def test_jsonl_extra_columns_follow_error_with_their_values(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    assert open_writer(path, JSON_TASK, extra_columns=VOTES).write(VOTED) == 2
    rows = _roundtrip_rows(path)
    assert rows == [
        {**output_row(JSON_TASK, FAILED), "agreement": None, "votes": 0},
        {**output_row(JSON_TASK, OK), "agreement": 0.6667, "votes": 3},
    ]
    assert list(rows[1])[-3:] == ["error", "agreement", "votes"]


def test_csv_extra_columns_follow_error_with_their_values(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    open_writer(path, JSON_TASK, extra_columns=VOTES).write(VOTED)
    with path.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == [
        "id",
        "label",
        "answer_id",
        "answer_status",
        "tags",
        "status",
        "error",
        "agreement",
        "votes",
    ]
    assert rows[1][-4:] == ["failed", "answer missing", "", "0"]
    assert rows[2][-4:] == ["ok", "", "0.6667", "3"]


def test_extra_columns_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    writer = open_writer("-", TEXT_TASK, extra_columns={"votes": "integer"})
    assert writer.write([Row(Result(0, "a", "ok", "hola"), {"votes": 2})]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "id": "a",
        "text": "hola",
        "status": "ok",
        "error": "",
        "votes": 2,
    }


def test_a_row_must_carry_exactly_the_extra_columns(tmp_path: Path) -> None:
    writer = open_writer(tmp_path / "out.jsonl", TEXT_TASK, extra_columns=VOTES)
    with pytest.raises(ValueError, match="carries columns"):
        writer.write([Row(Result(0, "a", "ok", "x"), {"votes": 1})])
    with pytest.raises(ValueError, match="carries columns"):
        writer.write([Result(0, "a", "ok", "x")])
    assert not (tmp_path / "out.jsonl").exists()


def test_extra_columns_must_not_clash_with_the_answer(tmp_path: Path) -> None:
    task = Task(instructions="x", output={"type": "object", "properties": {"votes": {"type": "integer"}}})
    with pytest.raises(UsageError, match="rename those fields"):
        open_writer(tmp_path / "out.jsonl", task, extra_columns=VOTES)
    with pytest.raises(ValueError, match="need a type"):
        open_writer(tmp_path / "out.jsonl", TEXT_TASK, extra_columns={"votes": "int"})


def test_io_does_not_import_parquet_until_asked() -> None:
    # _parquet builds on _io; _io must reach it only lazily, through FORMATS (no import cycle).
    code = "import sys, llmbatch._io; assert 'llmbatch._io.parquet' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
