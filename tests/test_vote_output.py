"""``run --votes`` writes the format it is asked for, vote columns included, through the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from llmbatch.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RECORDS = sum(
    1 for line in (EXAMPLES / "reviews.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()
)
COLUMNS = ["id", "label", "confidence", "status", "error", "agreement", "votes"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def read_parquet(path: Path) -> list[dict[str, Any]]:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(path)
    assert table.schema.field("agreement").type == pa.float64()
    assert table.schema.field("votes").type == pa.int64()
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


@pytest.mark.parametrize(
    ("name", "read"), [("out.jsonl", read_jsonl), ("out.csv", read_csv), ("out.parquet", read_parquet)]
)
def test_votes_write_every_format_with_the_vote_columns(tmp_path: Path, name: str, read: Any) -> None:
    out = tmp_path / name
    args = [
        "run",
        str(EXAMPLES / "reviews.jsonl"),
        "--task",
        str(EXAMPLES / "sentiment.toml"),
        "--provider",
        "sim",
        "--votes",
        "2",
        "--out",
        str(out),
        "--job-dir",
        str(tmp_path / "job"),
        "--quiet",
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = read(out)
    assert len(rows) == RECORDS
    assert list(rows[0]) == COLUMNS
    ok = [row for row in rows if row["status"] == "ok"]
    assert ok, "the simulator answered nothing"
    if name.endswith(".csv"):  # CSV holds text: the values must at least parse back
        ok = [{**row, "agreement": float(row["agreement"]), "votes": int(row["votes"])} for row in ok]
    for row in ok:
        assert isinstance(row["agreement"], float) and 0.5 <= row["agreement"] <= 1.0
        assert isinstance(row["votes"], int) and row["votes"] in (1, 2)
