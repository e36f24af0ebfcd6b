"""Hostile input (issue 3): bad records become failed rows with a one-line reason; the rest run on.

Every non-blank line of a JSONL file (every non-blank row of a CSV) is a
record and gets exactly one output row, in input order. Nothing a record does
may stop the others, hang the job or print a traceback.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _e2e_helpers import (
    API_KEY,
    HOSTILE,
    answer_of,
    expected_answer,
    invoke,
    load_task,
    metrics_rows,
    read_jsonl,
    run_args,
)
from llmbatch.sim.server import ThreadedServer


def _line(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


GOOD = [{"id": "g1", "text": "Good morning, my friend."}] + [
    {"id": f"g{i}", "text": text} for i, text in enumerate(HOSTILE, start=2)
]

# (line, expected id, a word the reason must contain); None: a good record.
# Ids keep their JSON value; a record without a usable id is named by its line number (from 1).
JSONL_CASES: list[tuple[bytes, str | int, str | None]] = [
    (_line(GOOD[0]), "g1", None),
    (b'{"id": "bad-json", "text": "unterminated', 2, "not valid JSON"),
    (b"[1, 2, 3]", 3, "not an object"),
    (b'{"id": "latin1", "text": "caf\xe9 cr\xe8me"}', 4, "not valid UTF-8"),
    (_line({"id": "no-text", "body": "the template wants text"}), "no-text", "no field 'text'"),
    (_line({"id": "empty", "text": ""}), "empty", "empty"),
    (_line({"id": "blank", "text": " \n\t "}), "blank", "empty"),
    (_line({"id": "null", "text": None}), "null", "null"),
    (_line({"text": "a record without its id"}), 9, "no id field 'id'"),
    (_line({"id": "g1", "text": "the same id again"}), "g1", "duplicate"),
    (_line({"id": "[/]", "text": "an id that looks like terminal markup [bold]"}), "[/]", None),
    (_line({"id": "[/]", "text": "and again"}), "[/]", "duplicate"),
    (_line({"id": "huge", "text": "word " * 200_000}), "huge", "context"),
    (b"", "", None),  # a blank line: not a record
    (_line({"id": 42, "text": "a numeric id is fine"}), 42, None),
    *[(_line(record), record["id"], None) for record in GOOD[1:]],
]


def _jsonl(path: Path) -> Path:
    path.write_bytes(b"\n".join(line for line, _, _ in JSONL_CASES) + b"\n")
    return path


def test_every_bad_record_fails_alone_with_a_reason(
    tmp_path: Path, sim_thread: Callable[..., ThreadedServer]
) -> None:
    source = _jsonl(tmp_path / "hostile.jsonl")
    out = tmp_path / "out.jsonl"
    sim = sim_thread()
    result = invoke(
        [*run_args(source, "translate", out, tmp_path / "job", sim.base_url), "--api-key", API_KEY]
    )

    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    rows = read_jsonl(out)
    cases = [(row_id, word) for line, row_id, word in JSONL_CASES if line]
    assert [row["id"] for row in rows] == [row_id for row_id, _ in cases]
    task = load_task("translate")
    texts = {json.loads(line)["id"]: json.loads(line) for line, _, word in JSONL_CASES if line and not word}
    assert len(texts) == sum(1 for line, _, word in JSONL_CASES if line and not word)
    for row, (row_id, word) in zip(rows, cases, strict=True):
        if word is None:
            assert row["status"] == "ok", row
            assert answer_of(task, row) == expected_answer(task, "json", texts[row_id])
        else:
            assert row["status"] == "failed", row
            assert word in row["error"], row
            assert "\n" not in row["error"] and len(row["error"]) < 300, row
    # The first g1 is answered; the later one is the duplicate, also named on stderr.
    assert rows[0]["status"] == "ok"
    assert "duplicate id 'g1'" in result.stderr and "duplicate id '[/]'" in result.stderr
    table = metrics_rows(result.stdout)
    failed = sum(1 for _, word in cases if word)
    assert table["records"] == f"{len(cases)} ({len(cases) - failed} ok, {failed} failed)"
    # The huge record was never sent: every request the server saw was small.
    assert sim.stats()["prompt_tokens"] < 50_000


def test_duplicate_ids_are_named_before_the_job_runs(
    tmp_path: Path, sim_thread: Callable[..., ThreadedServer]
) -> None:
    """Named at the start: seen even when the job then stops (here: quota exhausted, exit 4)."""
    source = tmp_path / "dupes.jsonl"
    source.write_text('{"id": "a", "text": "hi"}\n{"id": "a", "text": "hi again"}\n', encoding="utf-8")
    sim = sim_thread(quota_exhausted=True)
    args = run_args(source, "translate", tmp_path / "out.jsonl", tmp_path / "job", sim.base_url)
    result = invoke([*args, "--api-key", API_KEY])

    assert result.exit_code == 4, result.output
    assert "duplicate id 'a' at record 1 (first at record 0)" in result.stderr
    assert "quota" in result.stderr


def test_a_record_over_the_token_limit_fails_instead_of_waiting_forever(
    tmp_path: Path, sim_thread: Callable[..., ThreadedServer]
) -> None:
    """Under the context but over ``--tpm``: no minute could ever pay for it."""
    source = tmp_path / "in.jsonl"
    records = [*GOOD[:4], {"id": "big", "text": "word " * 80_000}, *GOOD[4:8]]
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    sim = sim_thread()
    args = [*run_args(source, "translate", out, tmp_path / "job", sim.base_url), "--api-key", API_KEY]
    result = invoke([*args, "--tpm", "60000"])

    assert result.exit_code == 3, result.output
    rows = {row["id"]: row for row in read_jsonl(out)}
    assert rows["big"]["status"] == "failed" and "limit" in rows["big"]["error"], rows["big"]
    assert all(row["status"] == "ok" for key, row in rows.items() if key != "big")


def test_ragged_csv_rows_fail_alone(tmp_path: Path, sim_thread: Callable[..., ThreadedServer]) -> None:
    source = tmp_path / "ragged.csv"
    source.write_bytes(
        b"id,title,text\n"
        b"c1,Great,I love it\n"
        b"c2,only two fields\n"
        b"c3,Four,fields,here\n"
        b'c4,"Quoted, with comma","a text over\ntwo lines, ""quoted"""\n'
        b"\n"
        b"c5,Bytes,caf\xe9\n"
        b"c6,Fine,works well\n"
    )
    out = tmp_path / "out.csv"
    sim = sim_thread()
    result = invoke(
        [*run_args(source, "sentiment", out, tmp_path / "job", sim.base_url), "--api-key", API_KEY]
    )

    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["status"] for row in rows] == ["ok", "failed", "failed", "ok", "failed", "ok"]
    assert "2 fields, the header has 3" in rows[1]["error"]
    assert "4 fields, the header has 3" in rows[2]["error"]
    assert "UTF-8" in rows[4]["error"]
    task = load_task("sentiment")
    quoted = {"title": "Quoted, with comma", "text": 'a text over\ntwo lines, "quoted"'}
    assert rows[3]["label"] == expected_answer(task, "json", quoted)["label"]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.jsonl", b""),
        ("blank.jsonl", b"\n\n  \n"),
        ("empty.csv", b""),
        ("header-only.csv", b"id,title,text\n"),
    ],
)
def test_an_empty_input_is_an_empty_output(
    tmp_path: Path, sim_thread: Callable[..., ThreadedServer], name: str, content: bytes
) -> None:
    source = tmp_path / name
    source.write_bytes(content)
    out = tmp_path / "out.jsonl"
    sim = sim_thread()
    result = invoke(
        [*run_args(source, "sentiment", out, tmp_path / "job", sim.base_url), "--api-key", API_KEY]
    )

    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == ""
    assert metrics_rows(result.stdout)["records"] == "0 (0 ok, 0 failed)"
    assert sim.stats()["requests"] == 0


def test_a_record_whose_template_fields_are_all_empty_fails(
    tmp_path: Path, sim_thread: Callable[..., ThreadedServer]
) -> None:
    """``{title}: {text}`` over an empty title and text renders ``": "``: nothing of the record."""
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "e", "title": "", "text": "  "}) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    sim = sim_thread()
    result = invoke(
        [*run_args(source, "sentiment", out, tmp_path / "job", sim.base_url), "--api-key", API_KEY]
    )

    assert result.exit_code == 3, result.output
    assert read_jsonl(out)[0]["status"] == "failed"
