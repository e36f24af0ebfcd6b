"""``--mode batch`` end to end: BatchRunner against the simulator's OpenAI and Anthropic
batch endpoints over real HTTP on 127.0.0.1, through the official SDKs.

The runner's clock and sleep are fake (polls advance a fake clock and yield a few
real milliseconds to the simulator's thread), so poll backoff costs no waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from _e2e_helpers import (
    EXAMPLES,
    assert_rows_match_oracle,
    expected_answer,
    invoke,
    load_task,
    read_jsonl,
    review_records,
    run_args,
    write_jsonl,
)
from _time import FakeClock
from llmbatch._engine.batch import BatchRunner, PollBackoff
from llmbatch._exceptions import AuthenticationError, BudgetReached, FatalError, UsageError
from llmbatch._io import Record
from llmbatch._options import RunOptions
from llmbatch._pricing import Price, PriceTable
from llmbatch._store.ingest import ingest
from llmbatch._store.job import DONE, ItemUpdate, JobStore
from llmbatch._task import Task
from llmbatch._types import Completion, Request, Usage
from llmbatch.providers import Provider, ProviderConfig, create_provider
from llmbatch.providers.base import BatchStatus
from llmbatch.providers.openai import OpenAIProvider
from llmbatch.sim import SimConfig, run_in_thread
from llmbatch.sim.server import ThreadedServer

KEY = "sk-test"
FAULTS = {"batch_failure_rate": 0.05, "batch_expire_rate": 0.02}
PACK = {"openai": "json", "anthropic": "tools"}


class FakeTime(FakeClock):
    """The fake clock, whose sleep of s seconds also takes s milliseconds of real time
    (at most 50), so the simulator's thread gets on with the batch meanwhile."""

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        await asyncio.sleep(min(seconds / 1000, 0.05))


@contextlib.contextmanager
def simulator(**knobs: Any) -> Iterator[ThreadedServer]:
    with run_in_thread(SimConfig(**{"seed": 11, "batch_delay": 0.05, **knobs})) as server:
        yield server


def provider_for(api: str, server: ThreadedServer) -> Provider:
    base_url = server.base_url if api == "openai" else server.base_url.removesuffix("/v1")
    return create_provider(api, ProviderConfig(model="sim-1", base_url=base_url, api_key=KEY))


def job_store(tmp_path: Path, task: Task, records: Sequence[dict[str, Any]]) -> JobStore:
    store = JobStore.open(tmp_path / "job")
    ingest(store, task, (Record(i, i, dict(r)) for i, r in enumerate(records)))
    return store


def sim_price() -> Price:
    price = PriceTable.load().get("sim-1")
    assert price is not None and price.batch == 0.5
    return price


def batch_runner(
    task: Task, provider: Provider, store: JobStore, fake: FakeTime, **kwargs: Any
) -> BatchRunner:
    options = RunOptions(batch_size=kwargs.pop("batch_size", 20), seed=3)
    return BatchRunner(
        task,
        provider,
        store,
        options,
        price=sim_price(),
        poll_interval=30.0,
        clock=fake,
        sleep=fake.sleep,
        **kwargs,
    )


def assert_all_match_oracle(
    store: JobStore, task: Task, pack: str, records: Sequence[dict[str, Any]]
) -> None:
    results = list(store.results())
    assert [r.id for r in results] == [r["id"] for r in records]
    wrong = [
        (r.id, r.status, r.error)
        for r, record in zip(results, records, strict=True)
        if r.status != "ok" or r.answer != expected_answer(task, pack, record)
    ]
    assert not wrong, f"{len(wrong)} records differ from the oracle, first: {wrong[:3]}"


def batch_rows(store: JobStore) -> list[dict[str, Any]]:
    rows = store.db.execute(
        "SELECT id, provider_batch_id, status, submitted, requests, bytes, packs, provider_status"
        " FROM batches ORDER BY id"
    ).fetchall()
    keys = ("id", "provider_batch_id", "status", "submitted", "requests", "bytes", "packs", "provider_status")
    return [dict(zip(keys, row, strict=True)) for row in rows]


# -- 3,000 records, failed and expired lines, both providers ------------------------------


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_every_record_comes_back_with_the_oracles_answer(tmp_path: Path, api: str) -> None:
    task = load_task("sentiment")
    records = review_records(3000, seed=5)
    store = job_store(tmp_path, task, records)
    fake = FakeTime()
    settled: list[ItemUpdate] = []
    with simulator(**FAULTS) as sim:
        provider = provider_for(api, sim)
        async with provider:
            # Packs of 10: 300 lines, so that 2% expired lines do show up.
            runner = batch_runner(task, provider, store, fake, on_settled=settled.extend, batch_size=10)
            metrics = await runner.run()
        stats = sim.stats()

    assert store.counts() == {"done": 3000}
    assert_all_match_oracle(store, task, PACK[api], records)
    # Failed and expired lines happened, and only they went again: the later batches hold
    # exactly the lines the earlier ones lost (a pack that failed twice goes as two halves).
    batches = stats["batches"]
    assert batches["lines_failed"] > 0 and batches["lines_expired"] > 0
    assert batches["submitted"] == runner.batches_submitted >= 2
    rows = batch_rows(store)
    assert [row["status"] for row in rows] == ["processed"] * len(rows)
    # Anthropic's batches are primed: one pack goes as a batch of its own, the rest after it.
    primers = runner.primers
    assert primers == (1 if api == "anthropic" else 0)
    assert [row["requests"] for row in rows[:primers]] == [1] * primers
    assert rows[primers]["requests"] == 300 - primers
    lost = batches["lines_failed"] + batches["lines_expired"]
    resent = lost + metrics.splits
    assert sum(row["requests"] for row in rows[primers + 1 :]) == resent == batches["lines"] - 300
    errors = dict(
        store.db.execute("SELECT error_kind, COUNT(*) FROM requests WHERE status = 'error' GROUP BY 1")
    )
    assert errors.get("expired", 0) == batches["lines_expired"]
    # Each result file is one transaction, heard once committed; every item settled once as done.
    assert sorted(u.index for u in settled if u.status == "done") == list(range(3000))
    # Priced at the batch rate.
    totals = store.request_totals()
    full = sim_price().cost(_usage(totals))
    assert metrics.cost == pytest.approx(full * 0.5)
    assert totals["cost"] == pytest.approx(metrics.cost)
    store.close()
    # Polls backed off instead of hammering: 30 s first, then growing.
    assert fake.sleeps[0] == pytest.approx(30.0)
    assert max(fake.sleeps) > 30.0


def _usage(totals: dict[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=totals["prompt_tokens"],
        completion_tokens=totals["completion_tokens"],
        cached_tokens=totals["cached_tokens"],
        cache_write_tokens=totals["cache_write_tokens"],
    )


# -- killed while polling: the next process re-attaches ------------------------------------


async def kill_mid_poll(task: Task, provider: Provider, store: JobStore) -> None:
    """Run a batch job until it has submitted and polled twice, then kill it (the process dies)."""
    fake = FakeTime()
    first = batch_runner(task, provider, store, fake)
    running = asyncio.create_task(first.run())
    while first.batches_submitted == 0 or len(fake.sleeps) < 2:
        await asyncio.sleep(0.005)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def kill_and_resume(
    task: Task, provider: Provider, store: JobStore, job_dir: Path
) -> tuple[BatchRunner, JobStore, dict[str, Any]]:
    """Kill a batch job mid-poll, then run it to the end in a second "process" on the same store:
    the second runner, its store, and the batch row the first left open (checked submitted)."""
    await kill_mid_poll(task, provider, store)
    [open_row] = batch_rows(store)
    assert open_row["status"] == "submitted" and open_row["provider_batch_id"]
    store.close()
    store = JobStore.open(job_dir)
    second = batch_runner(task, provider, store, FakeTime())
    await second.run()
    return second, store, open_row


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_a_killed_run_re_attaches_instead_of_submitting_again(tmp_path: Path, api: str) -> None:
    task = load_task("sentiment")
    records = review_records(3000, seed=6)
    store = job_store(tmp_path, task, records)
    # A second of real time before a batch is worked on: the first runner is still polling.
    with simulator(batch_delay=1.0, **FAULTS) as sim:
        provider = provider_for(api, sim)
        async with provider:
            await kill_mid_poll(task, provider, store)
            assert sim.stats()["batches"]["submitted"] == 1
            [open_row] = batch_rows(store)
            assert open_row["status"] == "submitted" and open_row["provider_batch_id"]
            assert store.counts() == {"pending": 3000}
            store.close()

            store = JobStore.open(tmp_path / "job")
            second = batch_runner(task, provider, store, FakeTime())
            await second.run()
        stats = sim.stats()["batches"]

    assert second.batches_reattached == 1
    assert store.counts() == {"done": 3000}
    assert_all_match_oracle(store, task, PACK[api], records)
    rows = batch_rows(store)
    assert rows[0]["provider_batch_id"] == open_row["provider_batch_id"]
    # No second submission of the first batch's lines: only what it lost went again.
    assert stats["submitted"] == 1 + second.batches_submitted == len(rows)
    lost = stats["lines_failed"] + stats["lines_expired"]
    assert stats["lines"] == 150 + lost + second.metrics.splits
    store.close()


async def test_a_pack_that_lost_an_item_while_away_is_planned_again_not_misread(tmp_path: Path) -> None:
    # Answers come back under k1..kN, by place in the pack as sent: had the pack been
    # restored without its settled item, every later answer would land one item early.
    task = load_task("sentiment")
    records = review_records(200, seed=8)
    store = job_store(tmp_path, task, records)
    with simulator(batch_delay=1.0) as sim:
        provider = provider_for("openai", sim)
        async with provider:
            await kill_mid_poll(task, provider, store)
            planted = {"label": "neutral", "confidence": 0.5}
            with store.transaction():
                store.update_items([ItemUpdate(5, DONE, 1, answer=planted)])
            second = batch_runner(task, provider, store, FakeTime())
            await second.run()
        stats = sim.stats()["batches"]

    assert second.batches_reattached == 1
    assert stats["submitted"] == 2  # the pack that held record 5 went again, the others did not
    results = list(store.results())
    assert results[5].answer == planted
    wrong = [
        r.id
        for i, (r, record) in enumerate(zip(results, records, strict=True))
        if i != 5 and (r.status != "ok" or r.answer != expected_answer(task, "json", record))
    ]
    assert wrong == []
    store.close()


# -- the limits per batch are respected by splitting -------------------------------------------


@pytest.mark.parametrize(
    ("max_requests", "max_bytes", "expect"),
    # A line of 20 reviews takes 4.6-5.1 kB, of 10 reviews 3.0-3.4 kB.
    [(7, None, "requests"), (None, 4_500, "bytes")],
)
async def test_batches_are_split_to_respect_the_limits(
    tmp_path: Path, max_requests: int | None, max_bytes: int | None, expect: str
) -> None:
    task = load_task("sentiment")
    records = review_records(300, seed=7)
    store = job_store(tmp_path, task, records)
    with simulator() as sim:
        provider = provider_for("openai", sim)
        async with provider:
            runner = batch_runner(
                task, provider, store, FakeTime(), max_requests=max_requests, max_bytes=max_bytes
            )
            await runner.run()
        stats = sim.stats()["batches"]

    assert store.counts() == {"done": 300}
    assert_all_match_oracle(store, task, "json", records)
    rows = batch_rows(store)
    assert len(rows) == stats["submitted"] > 1
    if expect == "requests":
        assert stats["largest_batch_lines"] <= 7
        assert [row["requests"] for row in rows] == [7, 7, 1]  # 15 packs of 20
    else:
        assert max(row["bytes"] for row in rows) <= 4_500
        assert stats["largest_batch_bytes"] <= 4_500
        # A line of 20 records is larger than a whole batch may be: every pack was halved.
        assert runner.metrics.splits == 15
        packs = [pack for row in rows for pack in json.loads(row["packs"]).values()]
        assert sorted(len(pack["items"]) for pack in packs) == [10] * 30


# -- budget, interrupted submissions, a provider that stops answering -------------------------------


async def test_max_cost_stops_submitting_and_a_rerun_finishes_without_repaying(tmp_path: Path) -> None:
    task = load_task("sentiment")
    records = review_records(400, seed=8)
    store = job_store(tmp_path, task, records)
    with simulator() as sim:
        provider = provider_for("openai", sim)
        async with provider:
            # Each pack reserves its whole answer budget at the batch price: about 2.3e-4 USD.
            options = RunOptions(batch_size=20, seed=3, max_cost=0.002)
            fake = FakeTime()
            runner = BatchRunner(
                task, provider, store, options, price=sim_price(), clock=fake, sleep=fake.sleep
            )
            with pytest.raises(BudgetReached, match="--max-cost"):
                await runner.run()
            spent = store.request_totals()["cost"]
            assert 0 < spent <= 0.002
            # Batches that settle release what they did not spend, and more lines go: the
            # run stops within one line's worst case of the budget, not a batch's worth below.
            assert spent >= 0.002 - 2.5e-4, spent
            assert runner.batches_submitted >= 2
            done = store.counts()["done"]
            assert 0 < done < 400 and store.counts()["pending"] == 400 - done

            rerun = batch_runner(task, provider, store, FakeTime())
            await rerun.run()
        stats = sim.stats()["batches"]
    assert store.counts() == {"done": 400}
    assert_all_match_oracle(store, task, "json", records)
    # Nothing answered in the first run was sent again.
    assert stats["lines"] == 20
    store.close()


async def test_a_batch_recorded_but_never_confirmed_is_abandoned_and_its_items_sent(tmp_path: Path) -> None:
    task = load_task("sentiment")
    records = review_records(40, seed=9)
    store = job_store(tmp_path, task, records)
    with store.transaction():  # a process that died inside submit_batch
        store.insert_batch("openai", {"p0": {"items": [[0, 0, 0], [1, 0, 0]], "failures": 0}}, 1, 100)
    with simulator() as sim:
        provider = provider_for("openai", sim)
        async with provider:
            runner = batch_runner(task, provider, store, FakeTime())
            await runner.run()
    assert runner.batches_reattached == 0
    assert [row["status"] for row in batch_rows(store)] == ["abandoned", "processed"]
    assert store.counts() == {"done": 40}
    store.close()


class _LockedOut(OpenAIProvider):
    """The simulator's batch API, until the key is revoked after the first submission."""

    async def poll_batch(self, batch_id: str) -> BatchStatus:
        raise AuthenticationError("HTTP 401: invalid key — check the API key")


async def test_a_fatal_error_while_polling_stops_with_the_batch_kept_open(tmp_path: Path) -> None:
    task = load_task("sentiment")
    records = review_records(40, seed=10)
    store = job_store(tmp_path, task, records)
    with simulator() as sim:
        provider = _LockedOut(ProviderConfig(model="sim-1", base_url=sim.base_url, api_key=KEY))
        async with provider:
            runner = batch_runner(task, provider, store, FakeTime())
            with pytest.raises(FatalError, match="run the same command again to re-attach"):
                await runner.run()
    [row] = batch_rows(store)
    assert row["status"] == "submitted"
    assert store.counts() == {"pending": 40}
    store.close()


# -- through the command line ----------------------------------------------------------------------


def test_the_cli_runs_a_job_in_batch_mode_at_half_the_price(tmp_path: Path) -> None:
    records = review_records(200, seed=12)
    data = write_jsonl(tmp_path / "in.jsonl", records)
    totals = {}
    with simulator(**FAULTS) as sim:
        for mode in ("sync", "batch"):
            out = tmp_path / f"{mode}.jsonl"
            args = run_args(data, "sentiment", out, tmp_path / mode, sim.base_url, batch_size=20)
            args += ["--mode", mode, "--poll-interval", "0.1", "--no-cache", "--api-key", KEY]
            args += ["--metrics-out", str(tmp_path / f"{mode}.json"), "--model", "sim-1"]
            result = invoke(args)
            assert result.exit_code == 0, result.output
            assert_rows_match_oracle(load_task("sentiment"), "json", records, read_jsonl(out))
            totals[mode] = json.loads((tmp_path / f"{mode}.json").read_text())
        assert sim.stats()["batches"]["submitted"] >= 1
    assert totals["batch"]["cost_usd"] == pytest.approx(totals["sync"]["cost_usd"] / 2, rel=0.05)


def test_the_cli_refuses_batch_mode_for_a_provider_without_a_batch_api(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", review_records(3))
    args = ["run", str(data), "--task", str(EXAMPLES / "sentiment.toml"), "--provider", "local"]
    result = invoke([*args, "--mode", "batch", "--job-dir", str(tmp_path / "job"), "--no-cache"])
    assert result.exit_code == 2
    assert "no batch API; use --mode sync" in result.output


# -- what batch mode refuses ---------------------------------------------------------------------


class _NoBatch(Provider):
    name = "nobatch"
    model = "m"

    async def complete(self, request: Request) -> Completion:  # pragma: no cover - never called
        raise AssertionError


def test_a_provider_without_a_batch_api_is_a_usage_error(tmp_path: Path) -> None:
    task = load_task("sentiment")
    store = job_store(tmp_path, task, review_records(3))
    with pytest.raises(UsageError, match="no batch API"):
        BatchRunner(task, _NoBatch(), store, RunOptions())
    store.close()


def test_poll_backoff_grows_to_its_cap() -> None:
    backoff = PollBackoff(first=5.0, factor=2.0, cap=60.0)
    assert [backoff.delay(n) for n in range(6)] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
