"""The paths a user takes, end to end: the real CLI in its own process, a simulator on 127.0.0.1.

Each test walks one everyday failure — the same stdin job run twice with other data,
an outage and its end, two runs at once, a proxy's HTML page, a stalled body,
SIGTERM, a read-only output folder, a full disk — and ends with the output file
checked row by row against the oracle's answers for those very records.

Between the CLI and the simulator stands a gate (``_gate.Gate``) that can refuse
connections, answer HTML or 401, or stall, and then recover on the same port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _e2e_helpers import (
    API_KEY,
    EXAMPLES,
    LLMBATCH,
    assert_rows_match_oracle,
    finish,
    load_task,
    read_jsonl,
    review_records,
    run_args,
    run_cli,
    start_cli,
    store_statuses,
    subprocess_env,
    wait_until,
    write_jsonl,
)
from _gate import Gate
from llmbatch.sim.server import ThreadedServer

pytestmark = pytest.mark.slow

TASK = load_task("sentiment")


@pytest.fixture
def gate_to(sim_thread: Callable[..., ThreadedServer]) -> Iterator[Callable[..., Gate]]:
    """``gate_to(**knobs)``: a gate before a simulator with ``SimConfig(**knobs)``, stopped after the test."""
    gates: list[Gate] = []

    def start(**knobs: Any) -> Gate:
        gates.append(Gate(sim_thread(**knobs).base_url).start())
        return gates[-1]

    yield start
    for gate in gates:
        gate.stop()


@pytest.fixture
def gate(gate_to: Callable[..., Gate]) -> Gate:
    """A gate passing requests to a simulator with a little latency."""
    return gate_to(seed=5, base_latency=0.05)


def args_for(gate: Gate, source: Path | str, out: Path | str, job_dir: Path, *extra: str) -> list[str]:
    return [
        *run_args(Path(source), "sentiment", Path(out), job_dir, gate.base_url, batch_size=5, concurrency=2),
        "--api-key",
        API_KEY,
        "--no-cache",
        *extra,
    ]


def the_same_command_finishes_it(args: list[str], records: list[dict[str, object]], out: Path) -> None:
    """Run ``args`` again: exit 0, and every row is the oracle's answer for its own record."""
    result = run_cli(args)
    assert result.returncode == 0, result.stderr
    assert_rows_match_oracle(TASK, "json", records, read_jsonl(out))


def one_line_error(stderr: str) -> str:
    """The error a failed command printed: one line, no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith(("error:", "stopped:"))]
    assert len(lines) == 1, stderr
    return lines[0]


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "4m") -> Iterator[Path]:
    """A small tmpfs at ``path`` (skips the test where this process may not mount)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


# -- 1. stdin and in-memory records: another dataset never gets this one's answers ------------


def test_stdin_run_twice_with_other_data_answers_the_other_data(tmp_path: Path, gate: Gate) -> None:
    first = review_records(30, seed=1)
    other = review_records(30, seed=2)  # the same ids r000…, other texts
    assert [r["id"] for r in first] == [r["id"] for r in other]
    assert [r["text"] for r in first] != [r["text"] for r in other]
    command = [LLMBATCH, "run", "-", "--task", str(EXAMPLES / "sentiment.toml"), "--out", "-"]
    command += ["--provider", "openai", "--base-url", gate.base_url, "--api-key", API_KEY, "--no-cache"]

    def run(records: list[dict[str, object]]) -> subprocess.CompletedProcess[str]:
        lines = "".join(__import__("json").dumps(r) + "\n" for r in records)
        return subprocess.run(
            command,
            input=lines,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=subprocess_env(),
            timeout=120,
        )

    def rows(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
        return [__import__("json").loads(line) for line in result.stdout.splitlines() if line.strip()]

    result = run(first)
    assert result.returncode == 0, result.stderr
    assert_rows_match_oracle(TASK, "json", first, rows(result))

    result = run(other)
    assert result.returncode == 0, result.stderr
    assert "not the one the job" in result.stderr and "starting over" in result.stderr
    assert_rows_match_oracle(TASK, "json", other, rows(result))

    sent = gate.passed
    result = run(other)  # the same data again: resumes, sends nothing
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stderr and gate.passed == sent
    assert_rows_match_oracle(TASK, "json", other, rows(result))


def test_the_python_api_on_one_job_dir_answers_each_list_of_records(tmp_path: Path, gate: Gate) -> None:
    import llmbatch

    first = review_records(12, seed=3)
    other = review_records(12, seed=4)
    options = {"provider": "openai", "base_url": gate.base_url, "api_key": API_KEY, "cache_dir": False}
    a = llmbatch.run(TASK, first, job_dir=tmp_path / "job", **options)  # type: ignore[arg-type]
    b = llmbatch.run(TASK, other, job_dir=tmp_path / "job", **options)  # type: ignore[arg-type]
    for records, result in ((first, a), (other, b)):
        rows = [
            {"id": r.id, "status": r.status, "error": r.error, **(r.answer or {})} for r in result.results
        ]
        assert_rows_match_oracle(TASK, "json", records, rows)


# -- 2. an outage stops the job; the same command finishes it; a re-run asks again what may pass --


def test_an_outage_stops_the_job_and_the_same_command_finishes_it(tmp_path: Path, gate: Gate) -> None:
    records = review_records(40, seed=6)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    args = args_for(gate, source, out, tmp_path / "job", "--outage-timeout", "2")
    gate.down()
    started = time.monotonic()
    result = run_cli(args)
    assert result.returncode == 4, result.stderr
    assert time.monotonic() - started < 30
    assert "unreachable" in one_line_error(result.stderr)
    assert store_statuses(tmp_path / "job") == {"pending": 40}  # no record failed for it
    assert [row["status"] for row in read_jsonl(out)] == ["stopped"] * 40

    gate.up()
    the_same_command_finishes_it(args, records, out)


def test_a_rerun_asks_again_what_may_pass_and_keeps_what_cannot(
    tmp_path: Path, gate_to: Callable[..., Gate], sim_thread: Callable[..., ThreadedServer]
) -> None:
    records = review_records(20, seed=7)
    source = tmp_path / "in.jsonl"
    write_jsonl(source, records)
    with source.open("a") as handle:
        handle.write('{"id": "broken", "text": \n')  # unreadable: fails now and on every run
    gate = gate_to(seed=1, truncate_rate=1.0)  # every answer cut off: truncated, may pass
    args = args_for(gate, source, tmp_path / "out.jsonl", tmp_path / "job", "--max-attempts", "1")
    result = run_cli(args)
    assert result.returncode == 3, result.stderr
    first = read_jsonl(tmp_path / "out.jsonl")
    assert {row["status"] for row in first} == {"failed"}

    gate.upstream = sim_thread(seed=1).base_url  # the model behaves now; same endpoint for the job
    result = run_cli(args)
    assert result.returncode == 3, result.stderr
    assert "asking again 20 records" in result.stderr
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert_rows_match_oracle(TASK, "json", records, rows[:-1])
    assert rows[-1]["status"] == "failed" and "not valid JSON" in str(rows[-1]["error"])

    sent = gate.passed
    result = run_cli([*args, "--no-retry-failed"])  # nothing left that may pass: nothing sent
    assert result.returncode == 3 and gate.passed == sent


# -- 3. one process per job --------------------------------------------------------------------


def test_a_second_run_on_a_running_job_is_refused_and_a_killed_ones_lock_is_taken_over(
    tmp_path: Path, gate_to: Callable[..., Gate]
) -> None:
    records = review_records(40, seed=8)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    gate = gate_to(seed=2, base_latency=0.4)
    job_dir = tmp_path / "job"
    args = [*args_for(gate, source, tmp_path / "out.jsonl", job_dir), "--batch-size", "2"]
    first = start_cli(args)
    try:
        wait_until(lambda: gate.passed >= 2 or first.poll() is not None)
        second = run_cli(args)
        assert second.returncode == 2, second.stderr
        assert f"process {first.pid}" in one_line_error(second.stderr)
        first.send_signal(signal.SIGKILL)  # dies holding the lock
    finally:
        finish(first)
    result = run_cli(args)  # the kernel dropped the dead run's lock: this one takes over
    assert result.returncode == 0, result.stderr
    assert_rows_match_oracle(TASK, "json", records, read_jsonl(tmp_path / "out.jsonl"))


# -- 4. the output never overwrites the input ----------------------------------------------------


def test_out_equal_to_the_input_is_refused_and_the_input_kept(tmp_path: Path, gate: Gate) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", review_records(5, seed=9))
    before = source.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(source)
    for out in (source, tmp_path / "." / "in.jsonl", tmp_path / "link.jsonl"):
        result = run_cli(args_for(gate, source, out, tmp_path / "job"))
        assert result.returncode == 2, result.stderr
        assert "is the input file" in one_line_error(result.stderr)
    assert source.read_bytes() == before and gate.seen == 0


# -- 5 and 8. a stopped or terminated job writes what it has ------------------------------------


def test_a_job_stopped_by_a_401_writes_its_answers_and_stopped_rows(tmp_path: Path, gate: Gate) -> None:
    records = review_records(40, seed=10)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    args = [*args_for(gate, source, out, tmp_path / "job"), "--concurrency", "1"]
    gate.switch(after=3, mode="unauthorized")
    result = run_cli(args)
    assert result.returncode == 4, result.stderr
    assert "401" in one_line_error(result.stderr)
    rows = read_jsonl(out)
    assert len(rows) == 40
    answered = [row for row in rows if row["status"] == "ok"]
    assert len(answered) == 15  # three packs of five before the key was refused
    assert all("401" in str(row["error"]) for row in rows if row["status"] == "stopped")

    gate.mode = "pass"
    the_same_command_finishes_it(args, records, out)


def test_sigterm_stops_like_ctrl_c_and_the_job_resumes(
    tmp_path: Path, sim_thread: Callable[..., ThreadedServer]
) -> None:
    records = review_records(60, seed=11)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    sim = sim_thread(seed=3, base_latency=0.3)
    out = tmp_path / "out.jsonl"
    args = [*run_args(source, "sentiment", out, tmp_path / "job", sim.base_url, batch_size=5, concurrency=2)]
    args += ["--api-key", API_KEY, "--no-cache"]
    process = start_cli(args)
    try:
        wait_until(lambda: sim.stats()["requests"] >= 3 or process.poll() is not None)
        assert process.poll() is None, "the job ended before SIGTERM"
        process.send_signal(signal.SIGTERM)
    finally:
        code, _, err = finish(process)
    assert code == 143, err
    assert "Traceback" not in err
    assert "terminated: state saved" in err and "run the same command again" in err
    rows = read_jsonl(out)
    assert len(rows) == 60 and {row["status"] for row in rows} == {"ok", "stopped"}

    the_same_command_finishes_it(args, records, out)


# -- 6 and 7. a hostile endpoint never crashes or hangs the job ----------------------------------


def test_an_html_page_from_the_endpoint_is_a_clear_error_and_the_job_recovers(
    tmp_path: Path, gate: Gate
) -> None:
    records = review_records(20, seed=12)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    args = args_for(gate, source, out, tmp_path / "job", "--outage-timeout", "2")
    gate.mode = "html"
    result = run_cli(args)
    assert result.returncode == 4, result.stderr
    line = one_line_error(result.stderr)
    assert "text/html" in line and "--base-url" in line
    assert [row["status"] for row in read_jsonl(out)] == ["stopped"] * 20

    gate.mode = "pass"
    the_same_command_finishes_it(args, records, out)


def test_a_stalled_body_is_cut_at_the_timeout_and_retried(tmp_path: Path, gate: Gate) -> None:
    records = review_records(20, seed=13)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    gate.mode = "slow"  # a byte every 0.5 s: ~1,900 s for the whole body
    gate.switch(after=2, mode="pass")
    started = time.monotonic()
    result = run_cli(args_for(gate, source, out, tmp_path / "job", "--timeout", "1"))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    assert_rows_match_oracle(TASK, "json", records, read_jsonl(out))


# -- 10. everyday mistakes: one line, before anything is paid ------------------------------------


def test_a_missing_input_or_unwritable_output_is_one_line_before_any_request(
    tmp_path: Path, gate: Gate
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", review_records(5, seed=14))
    job = tmp_path / "job"
    result = run_cli(args_for(gate, tmp_path / "nope.jsonl", tmp_path / "out.jsonl", job))
    assert result.returncode == 2 and "not found" in one_line_error(result.stderr)
    result = run_cli(args_for(gate, source, tmp_path / "no-such-folder" / "out.jsonl", job))
    assert result.returncode == 2 and "does not exist" in one_line_error(result.stderr)
    with tmpfs(tmp_path / "ro") as folder:
        remount(folder, "ro")
        result = run_cli(args_for(gate, source, folder / "out.jsonl", job))
        assert result.returncode == 2 and "cannot write" in one_line_error(result.stderr)
    assert gate.seen == 0


def test_an_output_folder_that_turns_read_only_keeps_the_answers_for_another_out(
    tmp_path: Path, gate_to: Callable[..., Gate]
) -> None:
    records = review_records(30, seed=15)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    gate = gate_to(seed=4, base_latency=0.3)
    with tmpfs(tmp_path / "outdir") as folder:
        args = args_for(gate, source, folder / "out.jsonl", tmp_path / "job")
        process = start_cli(args)
        try:
            wait_until(lambda: gate.passed >= 1 or process.poll() is not None)
            remount(folder, "ro")  # the folder was fine at the start; not at the end
        finally:
            code, _, err = finish(process)
        assert code == 4, err
        line = one_line_error(err)
        assert "cannot write" in line and "another --out" in line
        assert list(folder.iterdir()) == []  # no truncated .tmp left behind
    sent = gate.passed
    elsewhere = tmp_path / "elsewhere.jsonl"
    result = run_cli([*args[: args.index("--out") + 1], str(elsewhere), *args[args.index("--out") + 2 :]])
    assert result.returncode == 0, result.stderr
    assert gate.passed == sent  # nothing paid twice
    assert_rows_match_oracle(TASK, "json", records, read_jsonl(elsewhere))


def test_a_full_job_dir_disk_stops_resumable_and_the_job_finishes_once_there_is_room(
    tmp_path: Path, gate: Gate
) -> None:
    records = review_records(300, seed=16)
    for record in records:
        record["text"] = str(record["text"]) * 8  # a store that outgrows a small disk
    source = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    with tmpfs(tmp_path / "disk", size="300k") as disk:
        args = args_for(gate, source, out, disk / "job")
        result = run_cli(args)
        assert result.returncode == 4, result.stderr
        assert "cannot write the job store" in one_line_error(result.stderr)
        remount(disk, "size=20m")
        result = run_cli(args)
        assert result.returncode == 0, result.stderr
    assert_rows_match_oracle(TASK, "json", records, read_jsonl(out))


# -- the README's own commands, twice -------------------------------------------------------------


def test_the_readme_command_twice_pays_once_and_writes_the_same_rows(tmp_path: Path) -> None:
    command = ["run", str(EXAMPLES / "reviews.jsonl"), "--task", str(EXAMPLES / "sentiment.toml")]
    command += ["--provider", "sim", "--out", "labels.jsonl"]
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    first = subprocess.run(
        [LLMBATCH, *command], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert first.returncode == 0, first.stderr
    rows = (tmp_path / "labels.jsonl").read_text()
    second = subprocess.run(
        [LLMBATCH, *command], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stderr
    assert (tmp_path / "labels.jsonl").read_text() == rows
    assert len(rows.splitlines()) == sum(
        1 for line in (EXAMPLES / "reviews.jsonl").read_text().splitlines() if line
    )
    assert os.path.exists(tmp_path / ".llmbatch")
