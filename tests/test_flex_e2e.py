"""``llmbatch run --mode flex`` against the simulator's flex tier, as a user runs it."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _e2e_helpers import (
    API_KEY,
    assert_rows_match_oracle,
    finish,
    invoke,
    load_task,
    metrics_rows,
    read_jsonl,
    review_records,
    run_args,
    start_cli,
    wait_until,
    write_jsonl,
)
from llmbatch.sim.server import ThreadedServer

RECORDS = 300


def flex_run(
    tmp_path: Path, sim: ThreadedServer, name: str, *extra: str, concurrency: int = 32
) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    records = review_records(RECORDS, seed=5)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    out, metrics = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.metrics.json"
    args = run_args(source, "sentiment", out, tmp_path / name, sim.base_url, concurrency=concurrency)
    result = invoke(
        [
            *args,
            "--model",
            "gpt-4o-mini",
            "--api-key",
            API_KEY,
            "--no-cache",
            "--metrics-out",
            str(metrics),
            *extra,
        ]
    )
    summary = json.loads(metrics.read_text()) if metrics.exists() else {}
    assert_rows_match_oracle(load_task("sentiment"), "json", records, read_jsonl(out))
    return result, summary, records


def test_a_fifth_of_flex_unavailable_finishes_every_record_at_half_the_price(
    tmp_path: Path, sim_thread: Callable[..., ThreadedServer]
) -> None:
    flex_sim = sim_thread(flex_unavailable=0.2, seed=11)
    flex, summary, _ = flex_run(tmp_path, flex_sim, "flex", "--mode", "flex")
    assert flex.exit_code == 0, flex.output
    stats = flex_sim.stats()
    assert stats["flex_unavailable"] > 0 and stats["rate_limited"] == 0
    assert summary["flex_unavailable"] == stats["flex_unavailable"]
    assert summary["rate_limited"] == 0 and summary["flex_fallbacks"] == 0
    table = metrics_rows(flex.stdout)
    assert table["flex unavailable / fell back"].startswith(
        f"{stats['flex_unavailable']:,} requests / 0 records"
    )

    sync, sync_summary, _ = flex_run(tmp_path, sim_thread(seed=11), "sync", "--mode", "sync")
    assert sync.exit_code == 0, sync.output
    # The same answers, tokens within what different pack sizes make, at batch rates.
    per_record = summary["cost_usd"] / RECORDS
    sync_per_record = sync_summary["cost_usd"] / RECORDS
    assert per_record == pytest.approx(sync_per_record * 0.5, rel=0.15)


def test_stragglers_move_to_the_batch_api_and_the_run_says_so(
    tmp_path: Path, sim_thread: Callable[..., ThreadedServer]
) -> None:
    sim = sim_thread(flex_unavailable=1.0)  # flex never has room
    result, summary, _ = flex_run(
        tmp_path,
        sim,
        "fallback",
        "--mode",
        "flex",
        "--flex-fallback",
        "batch",
        "--flex-deadline",
        "0s",
        "--poll-interval",
        "0.1",
    )
    assert result.exit_code == 0, result.output
    assert f"flex had no capacity for {RECORDS} records" in result.stderr
    assert "sending them through the batch API" in result.stderr
    assert sim.stats()["batches"]["lines"] > 0
    assert summary["items_ok"] == RECORDS


def test_a_provider_without_a_flex_tier_is_refused_before_anything_is_sent(
    tmp_path: Path, sim_thread: Callable[..., ThreadedServer]
) -> None:
    sim = sim_thread()
    source = write_jsonl(tmp_path / "in.jsonl", review_records(5))
    args = run_args(source, "sentiment", tmp_path / "out.jsonl", tmp_path / "job", sim.base_url)
    args[args.index("openai")] = "anthropic"
    result = invoke([*args, "--api-key", API_KEY, "--mode", "flex"])
    assert result.exit_code == 2, result.output
    assert "--mode flex needs a provider with a flex tier" in result.stderr
    assert sim.stats()["requests"] == 0
    bad = invoke([*args, "--mode", "flex", "--flex-deadline", "soon"])
    assert bad.exit_code == 2 and "is not a duration" in bad.stderr


def test_a_run_stopped_while_the_stragglers_batch_is_open_resumes_by_re_attaching_to_it(
    tmp_path: Path, sim_thread: Callable[..., ThreadedServer]
) -> None:
    """Stopped mid-poll, the same command neither sends those records at flex again nor
    submits a second batch: its flex pass holds them out, then it re-attaches."""
    sim = sim_thread(flex_unavailable=1.0, batch_delay=3.0)
    records = review_records(40, seed=5)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    args = run_args(source, "sentiment", out, tmp_path / "job", sim.base_url, concurrency=8)
    command = [
        *args,
        "--api-key",
        API_KEY,
        "--no-cache",
        *("--mode", "flex", "--flex-fallback", "batch", "--flex-deadline", "0", "--poll-interval", "0.1"),
    ]
    process = start_cli(command)
    wait_until(lambda: sim.stats()["batches"]["submitted"] == 1, deadline=60)
    process.send_signal(signal.SIGINT)
    code, _, _ = finish(process)
    assert code != 0  # interrupted, state saved
    flex_before = sim.stats()["flex_requests"]

    resumed = invoke(command)
    assert resumed.exit_code == 0, resumed.output
    stats = sim.stats()
    assert stats["batches"]["submitted"] == 1, "a second batch was submitted for the same records"
    assert stats["flex_requests"] == flex_before, "records of the open batch were sent at flex again"
    assert_rows_match_oracle(load_task("sentiment"), "json", records, read_jsonl(out))
