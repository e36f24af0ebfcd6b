"""End to end: ``llmbatch run`` over real HTTP on 127.0.0.1 against the simulator.

Every output row must be the oracle's answer for its own id, in input order,
for every pack format a task can use (issue 2). The official ``openai`` SDK
against the simulator directly is covered in tests/sim.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from _e2e_helpers import (
    API_KEY,
    EXAMPLES,
    assert_rows_match_oracle,
    invoke,
    load_task,
    message_records,
    metrics_rows,
    read_jsonl,
    review_records,
    run_args,
    sentence_records,
    write_jsonl,
)
from llmbatch.sim.server import ThreadedServer

DATASETS = {"sentiment": review_records, "translate": sentence_records, "extract": message_records}

CASES = [
    ("sentiment", "json"),
    ("sentiment", "tools"),
    ("sentiment", "numbered"),
    ("translate", "separator"),
    ("translate", "json"),
    ("translate", "tools"),
    ("translate", "numbered"),
    ("extract", "json"),
    ("extract", "tools"),
    ("extract", "numbered"),
]


@pytest.mark.parametrize(("task_name", "pack"), CASES, ids=[f"{t}-{p}" for t, p in CASES])
def test_every_row_is_the_oracles_answer_for_its_id(
    tmp_path: Path, sim_thread: Callable[..., ThreadedServer], task_name: str, pack: str
) -> None:
    records = DATASETS[task_name](200, seed=7)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    sim = sim_thread()
    args = run_args(source, task_name, out, tmp_path / "job", sim.base_url, "--pack", pack)
    result = invoke([*args, "--api-key", API_KEY, "--no-cache"])

    assert result.exit_code == 0, result.output
    task = load_task(task_name)
    assert_rows_match_oracle(task, pack, records, read_jsonl(out))
    table = metrics_rows(result.stdout)
    assert table["records"] == "200 (200 ok, 0 failed)"
    assert table["item success rate"] == "100.0%"
    for row in ("batch success rate", "throughput", "latency mean / p50 / p95", "tokens in / out / cached"):
        assert row in table
    assert "wrote 200 rows" in result.stdout
    stats = sim.stats()
    assert stats["max_concurrent"] <= 4, "more requests in flight than --concurrency"
    assert max(int(size) for size in stats["pack_sizes"]) <= 10, "a pack larger than --batch-size"
    assert stats["items_requested"] >= 200


def test_csv_in_and_out(tmp_path: Path, sim_thread: Callable[..., ThreadedServer]) -> None:
    """The same job from a CSV file to a CSV file: one row per record, in order."""
    import csv

    records = review_records(60, seed=3)
    source = tmp_path / "in.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "title", "text"])
        writer.writeheader()
        writer.writerows(records)
    out = tmp_path / "out.csv"
    sim = sim_thread()
    result = invoke(
        [*run_args(source, "sentiment", out, tmp_path / "job", sim.base_url), "--api-key", API_KEY]
    )

    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    task = load_task("sentiment")
    for row in rows:
        row["confidence"] = float(row["confidence"])
    assert_rows_match_oracle(task, "json", records, rows)


def test_the_issue_acceptance_command_with_the_in_process_simulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's acceptance command, as written:

    llmbatch run examples/reviews.jsonl --task examples/sentiment.toml --provider sim --out out.jsonl
    """
    monkeypatch.chdir(tmp_path)
    args = [
        "run",
        str(EXAMPLES / "reviews.jsonl"),
        "--task",
        str(EXAMPLES / "sentiment.toml"),
        "--provider",
        "sim",
        "--out",
        "out.jsonl",
    ]
    result = invoke(args, env={"XDG_CACHE_HOME": str(tmp_path / "cache")})

    assert result.exit_code == 0, result.output
    records = read_jsonl(EXAMPLES / "reviews.jsonl")
    assert_rows_match_oracle(load_task("sentiment"), "json", records, read_jsonl(tmp_path / "out.jsonl"))
    table = metrics_rows(result.stdout)
    assert table["records"] == f"{len(records)} ({len(records)} ok, 0 failed)"
    assert "item success rate" in table and "cost per item" in table
    assert (tmp_path / ".llmbatch" / "reviews-sentiment" / "job.sqlite").exists()
