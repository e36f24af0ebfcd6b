"""The Ray engine end to end: a local Ray (2 CPUs, fractional workers) against the simulator.

One ``ray.init`` for the module (starting Ray takes ~15 s on two cores). Every
request goes over real HTTP on 127.0.0.1 to a simulator in a thread of this
process; its ``/sim/stats`` counters are the ground truth for rates and 429s.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _e2e_helpers import API_KEY, load_task, read_jsonl, review_records, write_jsonl
from llmbatch import (
    JobSpec,
    JobStopped,
    ProviderConfig,
    Result,
    RunOptions,
    Task,
    UsageError,
    create_provider,
    run_job,
)
from llmbatch._metrics import Metrics
from llmbatch.ray import POSITION, _fail_later_duplicates, limiter_actor, process, run_ray
from llmbatch.sim import SimConfig, run_in_thread
from llmbatch.sim.server import ThreadedServer

# llmbatch.ray imports Ray only when used; the tests need it.
ray = pytest.importorskip("ray", reason="the Ray engine needs pip install 'llmbatch[ray]'")

pytestmark = [
    pytest.mark.slow,
    # Ray's own DataContext warns about its own deprecated fields when it is created.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]

RPM = 600
WORKERS = 3
RECORDS = 1320


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


def _config(server: ThreadedServer) -> ProviderConfig:
    return ProviderConfig(base_url=server.base_url, api_key=API_KEY, model="sim-1")


class _Sampler:
    """Polls the simulator's request counter, to check the rate over every window of the run."""

    def __init__(self, server: ThreadedServer, every: float = 0.25) -> None:
        self.server = server
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.server.stats()["requests"]))
            self._stop.wait(self.every)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic(), self.server.stats()["requests"]))

    def worst_excess(self, rpm: float, burst: float) -> float:
        """The most requests any window held beyond what a bucket of ``burst`` refilled at ``rpm`` allows."""
        worst = 0.0
        for i, (t1, n1) in enumerate(self.samples):
            for t2, n2 in self.samples[i + 1 :]:
                # n1 was sampled up to one poll late: widen the window by it.
                allowed = burst + rpm / 60 * (t2 - t1 + self.every)
                worst = max(worst, (n2 - n1) - allowed)
        return worst


def test_three_workers_share_one_limit_and_answer_as_one_process(local_ray: None, tmp_path: Path) -> None:
    task = load_task("sentiment")
    # Packs of 2 make 660 requests: 10% more than the limit's burst of 600, so workers that
    # each kept their own bucket would draw ~9% of 429s, and the shared one waits only ~6 s.
    source = write_jsonl(tmp_path / "reviews.jsonl", review_records(RECORDS, seed=9))
    options = RunOptions(batch_size=2, concurrency=4, rpm=RPM)
    with run_in_thread(SimConfig(rate_limit_rpm=RPM)) as server, _Sampler(server) as sampler:
        summary = run_ray(
            source,
            task,
            tmp_path / "ray.jsonl",
            workers=WORKERS,
            provider="openai",
            provider_config=_config(server),
            options=options,
            worker_cpus=0.5,
            rows_per_block=250,
            limiter_name="test-shared-limit",
        )
        stats = server.stats()
    assert summary["items_total"] == RECORDS
    assert summary["items_ok"] == RECORDS, summary["failed_by_kind"]
    assert summary["rows_written"] == RECORDS
    assert stats["requests"] >= RECORDS // 2
    assert stats["rate_limited"] < 0.01 * stats["requests"], stats
    # Within the limit over every window of the run: the burst, then 600/min (+5%).
    assert sampler.worst_excess(RPM * 1.05, burst=RPM) <= 0, sampler.samples

    with run_in_thread(SimConfig()) as server:
        spec = JobSpec(
            task=task,
            input=source,
            output=tmp_path / "one.jsonl",
            job_dir=tmp_path / "job",
            options=RunOptions(batch_size=2, concurrency=8),
        )
        result = asyncio.run(run_job(spec, create_provider("openai", _config(server))))
    assert result.all_ok
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()


def test_process_returns_one_row_per_record_and_a_rerun_comes_from_the_cache(
    local_ray: None, tmp_path: Path
) -> None:
    task = Task(instructions="Translate to Spanish.", input="{text}", output="text", name="es")
    records: list[dict[str, Any]] = [{"text": f"good morning number {i}"} for i in range(57)]
    records[13] = {"text": "   "}  # blank: a failed row, not a gap
    records[40] = {"other": "no text field"}

    def run(server: ThreadedServer) -> list[dict[str, Any]]:
        out = process(
            ray.data.from_items(records),
            task,
            provider_config=_config(server),
            options=RunOptions(concurrency=2),
            workers=2,
            cache_dir=tmp_path / "cache",
            rows_per_block=20,
            limiter_name="test-cache",
        )
        return sorted(out.take_all(), key=lambda row: row[POSITION])

    with run_in_thread(SimConfig()) as server:
        first = run(server)
        paid = server.stats()["requests"]
        second = run(server)
        again = server.stats()["requests"] - paid
    assert [row[POSITION] for row in first] == list(range(57))
    assert [row["id"] for row in first] == list(range(1, 58))  # line numbers, from 1, as numbers
    failed = {row[POSITION]: row["error"] for row in first if row["status"] == "failed"}
    assert sorted(failed) == [13, 40]
    assert "'text'" in failed[40]  # Arrow has no missing field, only a null one
    assert all(row["text"] for row in first if row["status"] == "ok")
    assert paid > 0
    assert again == 0
    assert second == first


def test_a_job_that_must_stop_writes_failed_rows_and_raises(local_ray: None, tmp_path: Path) -> None:
    task = load_task("sentiment")
    source = write_jsonl(tmp_path / "reviews.jsonl", review_records(300, seed=3))
    with open(source, "ab") as out:
        out.write(b"{not json\n")  # a bad line is a failed row, not a failed read
    with run_in_thread(SimConfig(quota_exhausted=True)) as server:
        with pytest.raises(JobStopped, match="run the same command again to resume"):
            run_ray(
                source,
                task,
                tmp_path / "out.jsonl",
                workers=2,
                provider_config=_config(server),
                options=RunOptions(batch_size=5, concurrency=2),
                rows_per_block=50,
                limiter_name="test-stop",
            )
        requests = server.stats()["requests"]
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert len(rows) == 301
    assert all(row["status"] == "failed" for row in rows)
    assert "not valid JSON" in rows[-1]["error"]
    assert sum("the job stopped" in row["error"] for row in rows) == 300
    # Each worker stops at its first answer; the other blocks send nothing.
    assert requests <= 2 * 2 * 2, requests
    assert json.dumps(rows[0]).count("label") == 1  # the answer columns are there, empty


def test_what_the_ray_engine_cannot_do_is_refused_before_anything_starts(local_ray: None) -> None:
    records = ray.data.from_items([{"id": "a", "title": "t", "text": "fine"}])
    task = load_task("sentiment")
    with pytest.raises(UsageError, match="free-text"):
        process(records, task, provider="sim", options=RunOptions(pack="separator"))
    with pytest.raises(UsageError, match="max-cost"):
        process(records, task, provider="sim", options=RunOptions(max_cost=1.0))
    with pytest.raises(UsageError, match="standard input"):
        run_ray("-", task, "out.jsonl", provider="sim")


def test_a_limiter_asked_for_again_by_name_outlives_the_run_that_made_it(local_ray: None) -> None:
    # A handle found by name does not keep a limiter alive: had the driver swapped the handle
    # that made it for the one found, the limiter died under the next run (a CI failure).
    first = limiter_actor("test-again", {"requests": 60})  # the first run's, dropped when it is done
    again = limiter_actor("test-again", {"requests": 120})  # the next run's
    del first
    gc.collect()
    for _ in range(10):  # Ray frees an unreferenced actor asynchronously (within ~1 s here)
        assert ray.get(again.stop_reason.remote("any run")) is None
        time.sleep(0.5)
    ray.kill(again)  # and a killed one is made anew on the next ask
    assert _dies(again)
    assert ray.get(limiter_actor("test-again").stop_reason.remote("any run")) is None


def _dies(actor: Any, within: float = 10.0) -> bool:
    """Whether calls to ``actor`` start failing within ``within`` seconds (``ray.kill`` is asynchronous)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            ray.get(actor.stop_reason.remote("any run"))
        except ray.exceptions.RayActorError:
            return True
        time.sleep(0.1)
    return False


def test_a_repeated_id_across_blocks_fails_the_later_record_as_one_process_does() -> None:
    # Workers see one block each: the driver catches a repeat across blocks, with the job
    # store's wording, and moves the metrics along (no Ray needed for the rule itself).
    results = [
        Result(index=0, id="a", status="ok", answer={"label": "x"}, attempts=1),
        Result(index=1, id="b", status="failed", error="no", error_kind="missing", attempts=3),
        Result(index=2, id="a", status="ok", answer={"label": "y"}, attempts=1),
        Result(index=3, id="b", status="failed", error="no", error_kind="missing", attempts=3),
        Result(index=4, id=1, status="ok", answer={"label": "z"}, attempts=1),
    ]
    metrics = Metrics()
    metrics.items_ok, metrics.items_failed["missing"] = 3, 2

    _fail_later_duplicates(results, metrics)

    assert [(r.status, r.error_kind) for r in results] == [
        ("ok", ""),
        ("failed", "missing"),
        ("failed", "duplicate_id"),
        ("failed", "duplicate_id"),
        ("ok", ""),  # the number 1 is not the string "a" or "b"
    ]
    assert results[2].error == "duplicate id 'a': first used by record 0"
    assert results[2].attempts == 1
    assert metrics.items_ok == 2
    assert dict(metrics.items_failed) == {"missing": 1, "duplicate_id": 2}
