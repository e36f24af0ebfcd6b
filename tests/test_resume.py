"""Crash-safe resume and the result cache (issue 3), over real HTTP on 127.0.0.1.

- ``kill -9`` at random moments, resumed each time: the same output as an
  uninterrupted run, no duplicate rows, the store intact after every kill, and
  no request re-sent except the ones in flight at a kill;
- a finished job run again, or the same records in a fresh job with the same
  cache, makes zero requests; one word changed in the instructions re-sends all;
- Ctrl-C stops with exit code 130 and one line saying how to resume.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from _e2e_helpers import (
    API_KEY,
    EXAMPLES,
    SimProcess,
    assert_rows_match_oracle,
    finish,
    integrity,
    invoke,
    load_task,
    metrics_rows,
    read_jsonl,
    review_records,
    run_args,
    run_cli,
    start_cli,
    store_requests,
    store_statuses,
    wait_until,
    write_jsonl,
)
from llmbatch._task import Task
from llmbatch.sim.server import ThreadedServer

CONCURRENCY = 4
BATCH = 5
LATENCY = "0.2"
"""Seconds per request: 400 records in packs of 5, 4 at a time, take about 4 s."""


def _kill_at_random_moment(
    sim: SimProcess, args: list[str], job_dir: Path, rng: random.Random
) -> tuple[int, int]:
    """Start the job, SIGKILL it a random moment after its first request; (requests sent, committed)."""
    sent_before = sim.stats()["requests"]
    committed_before = len(store_requests(job_dir)) if (job_dir / "job.sqlite").exists() else 0
    process = start_cli(args)
    try:
        wait_until(lambda: sim.stats()["requests"] > sent_before or process.poll() is not None)
        time.sleep(rng.uniform(0.0, 0.6))
        assert process.poll() is None, f"the job ended before the kill: {process.communicate()}"
        process.kill()
    finally:
        finish(process)
    # The killed client's connections are closed; let the server see every request it got.
    wait_until(lambda: sim.stats()["in_flight"] == 0)
    return sim.stats()["requests"] - sent_before, len(store_requests(job_dir)) - committed_before


@pytest.mark.slow
def test_kill_nine_five_times_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, sim_proc: Callable[..., SimProcess]
) -> None:
    records = review_records(400, seed=21)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    sim = sim_proc("--base-latency", LATENCY)

    def args(name: str) -> list[str]:
        return [
            *run_args(
                source,
                "sentiment",
                tmp_path / f"{name}.jsonl",
                tmp_path / name,
                sim.base_url,
                batch_size=BATCH,
                concurrency=CONCURRENCY,
            ),
            "--api-key",
            API_KEY,
            "--no-cache",
        ]

    # The uninterrupted run, in a job dir of its own.
    before = sim.stats()["requests"]
    code, out, err = finish(start_cli(args("reference")))
    assert code == 0, err
    reference_requests = sim.stats()["requests"] - before
    assert reference_requests == len(records) // BATCH

    rng = random.Random(5)
    lost = []
    killed_requests = 0
    for _ in range(5):
        sent, committed = _kill_at_random_moment(sim, args("killed"), tmp_path / "killed", rng)
        killed_requests += sent
        lost.append(sent - committed)
        assert integrity(tmp_path / "killed") == "ok"
        statuses = store_statuses(tmp_path / "killed")
        assert sum(statuses.values()) == len(records) and "failed" not in statuses
        assert not (tmp_path / "killed.jsonl").exists(), "an output file from a killed run"
    before = sim.stats()["requests"]
    code, out, err = finish(start_cli(args("killed")))
    assert code == 0, err
    assert "Traceback" not in out + err
    final_requests = sim.stats()["requests"] - before

    resumed = (tmp_path / "killed.jsonl").read_bytes()
    assert resumed == (tmp_path / "reference.jsonl").read_bytes()
    ids = [row["id"] for row in read_jsonl(tmp_path / "killed.jsonl")]
    assert len(ids) == len(set(ids)) == len(records)
    assert_rows_match_oracle(load_task("sentiment"), "json", records, read_jsonl(tmp_path / "killed.jsonl"))

    # Only requests in flight at a kill were lost, and only those were sent twice.
    assert all(0 <= n <= CONCURRENCY for n in lost), lost
    extra = killed_requests + final_requests - reference_requests
    assert extra == sum(lost), (extra, lost)
    assert extra <= CONCURRENCY * 5
    answered = Counter(
        i for keys, status in store_requests(tmp_path / "killed") if status == "ok" for i in keys
    )
    assert sorted(answered) == list(range(len(records)))
    assert set(answered.values()) == {1}, "an item answered by two committed requests"


def _task_copy(directory: Path, old: str = "", new: str = "") -> Path:
    """A copy of the sentiment task file, with ``old`` replaced by ``new`` once."""
    text = (EXAMPLES / "sentiment.toml").read_text(encoding="utf-8")
    assert old in text
    directory.mkdir()
    path = directory / "sentiment.toml"
    path.write_text(text.replace(old, new, 1) if old else text, encoding="utf-8")
    return path


def test_a_finished_job_and_a_cached_one_make_zero_requests_and_an_edit_resends_all(
    tmp_path: Path, sim_thread: Callable[..., ThreadedServer]
) -> None:
    records = review_records(200, seed=8)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    sim = sim_thread()
    cache = ["--api-key", API_KEY, "--cache-dir", str(tmp_path / "cache")]
    task_file = _task_copy(tmp_path / "task")

    def run(job: str, out: str, *extra: str, task: Path = task_file) -> tuple[str, str, dict[str, int]]:
        before = sim.stats()
        result = invoke(
            [*run_args(source, task, tmp_path / out, tmp_path / job, sim.base_url), *cache, *extra]
        )
        assert result.exit_code == 0, result.output
        after = sim.stats()
        sent = {k: after[k] - before[k] for k in ("requests", "items_requested")}
        return result.stdout, result.stderr, sent

    _, _, first = run("job", "first.jsonl")
    assert first == {"requests": 20, "items_requested": 200}
    expected = (tmp_path / "first.jsonl").read_bytes()

    # The same command again: the job is finished, nothing is sent.
    stdout, stderr, again = run("job", "again.jsonl")
    assert again == {"requests": 0, "items_requested": 0}
    assert metrics_rows(stdout)["already done (resumed)"] == "200"
    assert "resuming" in stderr
    assert (tmp_path / "again.jsonl").read_bytes() == expected

    # A fresh job dir over the same records and the same cache: every answer from the cache.
    stdout, _, cached = run("fresh", "cached.jsonl")
    assert cached == {"requests": 0, "items_requested": 0}
    assert metrics_rows(stdout)["from cache"] == "200"
    assert (tmp_path / "cached.jsonl").read_bytes() == expected

    # Without the cache the same fresh job pays again (the cache is what saved it).
    _, _, uncached = run("uncached", "uncached.jsonl", "--no-cache")
    assert uncached == first

    # One word of the instructions changed: a new task, so no stored or cached answer is reused.
    edited = _task_copy(
        tmp_path / "edited", "Classify the overall sentiment", "Classify the general sentiment"
    )
    _, stderr, resent = run("job", "edited.jsonl", task=edited)
    assert resent == first
    assert "starting over" in stderr
    assert_rows_match_oracle(Task.from_file(edited), "json", records, read_jsonl(tmp_path / "edited.jsonl"))


def test_ctrl_c_stops_with_130_and_says_how_to_resume(
    tmp_path: Path, sim_proc: Callable[..., SimProcess]
) -> None:
    records = review_records(200, seed=13)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    sim = sim_proc("--base-latency", LATENCY)
    job_dir = tmp_path / "job"
    args = run_args(
        source,
        "sentiment",
        tmp_path / "out.jsonl",
        job_dir,
        sim.base_url,
        batch_size=BATCH,
        concurrency=CONCURRENCY,
    )
    args += ["--api-key", API_KEY, "--no-cache"]

    process = start_cli(args)
    try:
        wait_until(lambda: sim.stats()["requests"] >= 8 or process.poll() is not None)
        assert process.poll() is None, "the job ended before Ctrl-C"
        process.send_signal(signal.SIGINT)
    finally:
        code, out, err = finish(process)

    assert code == 130, err
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "run the same command again to resume" in lines[0] and str(job_dir) in lines[0]
    assert integrity(job_dir) == "ok"
    statuses = store_statuses(job_dir)
    assert statuses.get("done", 0) > 0 and statuses.get("pending", 0) > 0, statuses
    # The answers paid for so far are written, the rest as stopped rows: never a gap.
    partial = read_jsonl(tmp_path / "out.jsonl")
    assert len(partial) == len(records)
    assert sum(row["status"] == "ok" for row in partial) == statuses["done"]
    assert sum(row["status"] == "stopped" for row in partial) == statuses["pending"]

    result = run_cli(args)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stderr
    assert_rows_match_oracle(load_task("sentiment"), "json", records, read_jsonl(tmp_path / "out.jsonl"))
