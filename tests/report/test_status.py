"""``llmbatch status``: figures from the store, read safely while the job writes (issue 8)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import click
import pytest
from _report_helpers import Item, error, make_store, ok, sim_provider, sim_spec
from click.testing import CliRunner

from _e2e_helpers import WIDE, metrics_rows
from llmbatch import run_job
from llmbatch._exceptions import UsageError
from llmbatch._store.job import FAILED, PENDING
from llmbatch.report.html import render_report
from llmbatch.report.status import FALLBACK_RESUME, job_status, resume_command
from llmbatch.sim import SimConfig

NOW = 1000.0


def small_job(job_dir: Path, **meta: Any) -> Path:
    """20 records: 10 done, 2 failed, 8 pending; two busy stretches 775 s apart."""
    items = [Item(f"r{i}") for i in range(10)]
    items += [Item("m", FAILED, "missing", "no answer"), Item("t", FAILED, "timeout", "gave up")]
    items += [Item(f"p{i}", PENDING) for i in range(8)]
    requests = [
        ok(100, 110, 4, cost=0.04),
        ok(105, 120, 4, cost=0.04, items_ok=3),
        error(120, 121, 4, "rate_limited"),
        error(121, 125, 4, "timeout"),
        ok(900, 960, 3, cost=0.03),  # resumed after the job was stopped
    ]
    return make_store(job_dir, items, requests, meta)


def test_figures_of_a_job_with_a_pause(tmp_path: Path) -> None:
    status = job_status(small_job(tmp_path / "job"), now=NOW)

    assert (status["records_total"], status["records_done"]) == (20, 10)
    assert (status["records_failed"], status["records_pending"]) == (2, 8)
    # Active time leaves out the 775 s when nothing was in flight: 25 s + 60 s.
    assert status["active_s"] == pytest.approx(85.0)
    assert status["items_per_min_overall"] == pytest.approx(10 * 60 / 85)
    assert status["items_per_min_last_60s"] == pytest.approx(3.0)  # the request that finished at 960
    assert status["eta_s"] == pytest.approx(8 / 3.0 * 60)
    assert status["spend_usd"] == pytest.approx(0.11)  # failed requests cost nothing, and are not "unknown"
    # Per record that went through requests (10 answered + 2 failed), times what is left.
    assert status["spend_per_record_usd"] == pytest.approx(0.11 / 12)
    assert status["projected_spend_usd"] == pytest.approx(0.11 + 0.11 / 12 * 8)
    assert (status["rate_limited"], status["timeouts"]) == (1, 1)
    assert status["requests_failed_by_kind"] == {"rate_limited": 1, "timeout": 1}
    assert status["failures_by_kind"] == {"missing": 1, "timeout": 1}
    assert status["mean_pack_size"] == pytest.approx(19 / 5)
    assert status["idle_s"] == pytest.approx(40.0)
    assert status["resume_command"] == FALLBACK_RESUME
    json.dumps(status)  # plain data, for --json


def test_spend_is_unknown_when_an_answered_request_has_no_price(tmp_path: Path) -> None:
    job = make_store(tmp_path / "job", [Item("a"), Item("b", PENDING)], [ok(1, 2, 1, cost=None)])
    status = job_status(job, now=10)
    assert status["spend_usd"] is None
    assert status["projected_spend_usd"] is None
    assert status["unpriced_requests"] == 1


def test_a_finished_job_projects_exactly_its_spend(sim_job: Path) -> None:
    status = job_status(sim_job)
    db = sqlite3.connect(sim_job / "job.sqlite")
    try:
        by_status = dict(db.execute("SELECT status, COUNT(*) FROM items GROUP BY status").fetchall())
        spent = db.execute("SELECT SUM(cost) FROM requests").fetchone()[0]
        sizes = db.execute("SELECT AVG(size) FROM requests").fetchone()[0]
    finally:
        db.close()
    assert status["records_total"] == 300
    assert status["records_done"] == by_status["done"]
    assert status["records_failed"] == by_status["failed"] > 0, "the faulty simulator should fail some"
    assert status["records_pending"] == 0
    assert status["spend_usd"] == pytest.approx(spent) and spent > 0
    assert status["projected_spend_usd"] == pytest.approx(spent)
    assert status["mean_pack_size"] == pytest.approx(sizes)
    assert status["items_per_min_overall"] > 0
    assert set(status["failures_by_kind"]) <= {"missing", "invalid", "timeout", "server_error"}
    assert status["requests_failed_by_kind"], "the faulty simulator should fail some requests"
    assert status["model"] == "sim-1"


def test_status_reads_while_another_connection_holds_a_write_transaction(tmp_path: Path) -> None:
    job = small_job(tmp_path / "job")
    writer = sqlite3.connect(job / "job.sqlite", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE items SET status = 'done' WHERE status = 'pending'")
        writer.execute(
            "INSERT INTO requests (started, finished, keys, size, attempt, status, items_ok, cost)"
            " VALUES (990, 995, '[]', 8, 0, 'ok', 8, 0.08)"
        )
        began = time.monotonic()
        during = job_status(job, now=NOW)
        waited = time.monotonic() - began
        writer.execute("COMMIT")
        after = job_status(job, now=NOW)
    finally:
        writer.close()
    assert waited < 1.0, "status waited for the writer (the busy timeout is 5 s)"
    # The snapshot from before the writer's transaction, whole: no half-applied request.
    assert (during["records_pending"], during["requests"]) == (8, 5)
    assert (after["records_pending"], after["requests"]) == (0, 6)
    assert after["projected_spend_usd"] == pytest.approx(0.19)


def test_status_and_report_of_a_running_job(tmp_path: Path) -> None:
    """A real job writing in another thread: every read is a consistent snapshot, and progresses."""
    spec = sim_spec(tmp_path, 120)
    spec = dataclasses.replace(spec, options=dataclasses.replace(spec.options, batch_size=4, concurrency=2))
    slow = SimConfig(base_latency=0.04, seed=5)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(run_job(spec, sim_provider(slow, timeout=10.0)))
        except BaseException as exc:  # reported by the test below
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    snapshots = []
    page = ""
    try:
        while worker.is_alive():
            with contextlib.suppress(UsageError):  # the store is not there yet, or not migrated
                snapshots.append(job_status(spec.job_dir))
            if snapshots and snapshots[-1]["records_done"] and not page:
                page = render_report(spec.job_dir, tmp_path / "running.html").read_text("utf-8")
            time.sleep(0.02)
    finally:
        worker.join(60)
    assert not failure, failure
    running = [s for s in snapshots if s["records_pending"] and s["records_done"]]
    assert len(running) >= 3, "the job finished before status could see it running"
    for s in running:
        assert s["records_done"] + s["records_failed"] + s["records_pending"] == 120
        assert s["items_per_min_last_60s"] > 0
    done = [s["records_done"] for s in snapshots]
    assert done == sorted(done), "progress went backwards"
    assert job_status(spec.job_dir)["records_pending"] == 0
    assert 'id="chart-throughput"' in page


# -- the resume command ------------------------------------------------------------------


def test_resume_command_leaves_out_restart_and_the_api_key() -> None:
    command, note = resume_command(
        ["llmbatch", "run", "in put.jsonl", "--api-key", "sk-1", "--api-key=sk-2", "--restart", "--out", "o"]
    )
    assert command == "llmbatch run 'in put.jsonl' --out o"
    assert "OPENAI_API_KEY" in note


@pytest.mark.parametrize(
    ("stored", "cwd", "expected"),
    [
        (["run", "in.jsonl"], None, "llmbatch run in.jsonl"),
        (["llmbatch", "run", "x", "--api-key", "***"], None, "llmbatch run x"),  # as cli.py stores it
        (["/venv/bin/llmbatch", "run", "x"], None, "/venv/bin/llmbatch run x"),
        (["/src/llmbatch/__main__.py", "run", "x"], None, "python -m llmbatch run x"),
        (["llmbatch", "run", "x"], "/data/my jobs", "cd '/data/my jobs' && llmbatch run x"),
        ("llmbatch run x", None, "llmbatch run x"),
        (None, None, FALLBACK_RESUME),
        ([], None, FALLBACK_RESUME),
        ({"not": "argv"}, None, FALLBACK_RESUME),
    ],
)
def test_resume_command_forms(stored: Any, cwd: Any, expected: str) -> None:
    assert resume_command(stored, cwd)[0] == expected


# -- the command line -------------------------------------------------------------------


def test_status_command_table_and_json(cli: click.Group, sim_job: Path) -> None:
    runner = CliRunner()
    as_json = runner.invoke(cli, ["status", str(sim_job), "--json"], env=WIDE)
    assert as_json.exit_code == 0, as_json.output
    figures = json.loads(as_json.stdout)
    assert figures["records_total"] == 300
    assert figures["resume_command"] == "llmbatch run reviews.jsonl --task sentiment.toml --job-dir 'my job'"

    table = runner.invoke(cli, ["status", str(sim_job)], env=WIDE)
    assert table.exit_code == 0, table.output
    rows = metrics_rows(table.stdout)
    assert rows["records"].startswith("300 total")
    assert rows["resume"] == figures["resume_command"]
    assert rows["failed records by kind"] != "none"
    assert "sk-secret" not in table.output + as_json.output


def test_report_command_writes_into_the_job_dir_by_default(
    cli: click.Group, sim_job: Path, tmp_path: Path
) -> None:
    job = Path(shutil.copytree(sim_job, tmp_path / "job"))
    runner = CliRunner()
    default = runner.invoke(cli, ["report", str(job)], env=WIDE)
    assert default.exit_code == 0, default.output
    assert default.stdout.strip().splitlines()[-1] == str(job / "report.html")
    assert "records" in metrics_rows(default.stdout), "the status table is printed too"
    assert (job / "report.html").read_text("utf-8").startswith("<!DOCTYPE html>")

    elsewhere = tmp_path / "r.html"
    explicit = runner.invoke(cli, ["report", str(job), "--html", str(elsewhere)], env=WIDE)
    assert explicit.exit_code == 0, explicit.output
    assert explicit.stdout.strip() == str(elsewhere)
    assert elsewhere.is_file()


@pytest.mark.parametrize("command", ["status", "report"])
@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no job directory"),
        ("a-file", "is a file, not a job directory"),
        ("empty", "holds no job (no job.sqlite)"),
        ("garbage", "is not a readable llmbatch job store"),
        ("not-a-job", "is not a readable llmbatch job store"),
    ],
)
def test_no_job_is_a_one_line_usage_error(
    cli: click.Group, tmp_path: Path, command: str, setup: str, message: str
) -> None:
    job = tmp_path / "job"
    if setup == "a-file":
        job.write_text("not a dir")
    elif setup != "missing":
        job.mkdir()
    if setup == "garbage":
        (job / "job.sqlite").write_bytes(b"this is not a database" * 100)
    elif setup == "not-a-job":
        sqlite3.connect(job / "job.sqlite").execute("CREATE TABLE other (x)").connection.close()
    result = CliRunner().invoke(cli, [command, str(job)], env=WIDE)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert not (tmp_path / "job" / "report.html").exists()


def test_report_to_a_missing_folder_is_a_one_line_usage_error(
    cli: click.Group, sim_job: Path, tmp_path: Path
) -> None:
    target = tmp_path / "no" / "such" / "r.html"
    result = CliRunner().invoke(cli, ["report", str(sim_job), "--html", str(target)], env=WIDE)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: cannot write the report to {target}: No such file or directory"
