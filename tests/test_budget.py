"""``--max-cost`` in sync mode: never above the budget, stops within one request of it,
and a re-run with a larger budget finishes without paying for anything twice."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from _fakes import KeyedFake, reply_content
from llmbatch import Completion, Request, RunOptions, Task, Usage
from llmbatch._engine.runner import Runner
from llmbatch._exceptions import BudgetReached
from llmbatch._gates.budget import Budget
from llmbatch._io import Record
from llmbatch._pricing import Price
from llmbatch._store.ingest import ingest
from llmbatch._store.job import JobStore
from llmbatch.providers.base import Provider

TASK = Task(instructions="Label each text.", input="{text}", output={"label": ["a", "b"]})
PRICE = Price(input=0.15, output=0.60)  # USD per million tokens, 1:4 (sums of these leave float residues)
RECORDS = 400
PACK = 20


class Answering(KeyedFake):
    """Answers every item with a short label, using a fraction of the answer budget."""

    async def answer(self, items: dict[str, str], request: Request) -> Completion:
        await asyncio.sleep(0.001 * len(items))
        used = 4 * len(items)  # a label is far below its worst case, whatever the budget
        answer = reply_content(request, {key: {"label": "a"} for key in items})
        return Completion(answer, "stop", Usage(request.est_prompt_tokens, used), latency=0.01)


def _run(job: Path, provider: Provider, max_cost: float | None) -> tuple[float, str | None]:
    store = JobStore.open(job)
    if not store.counts():
        # Texts of varied length make every reservation a different float.
        records = [Record(i, i, {"id": str(i), "text": "word " * (i % 37) + str(i)}) for i in range(RECORDS)]
        ingest(store, TASK, records)
    options = RunOptions(batch_size=5, concurrency=32, max_cost=max_cost)
    runner = Runner(TASK, provider, store, options, price=PRICE)
    stopped = None
    try:
        metrics = asyncio.run(runner.run())
    except BudgetReached as exc:
        stopped, metrics = str(exc), runner.metrics
    store.close()
    return metrics.cost, stopped


def _paid(job: Path) -> float:
    db = sqlite3.connect(job / "job.sqlite")
    (cost,) = db.execute("SELECT SUM(cost) FROM requests").fetchone()
    return float(cost)


@pytest.mark.timeout(60)  # a reservation never released would hang the job
def test_the_budget_stops_within_one_request_and_a_rerun_finishes_without_repaying(tmp_path: Path) -> None:
    full_cost, _ = _run(tmp_path / "full", Answering(), None)
    one_request = full_cost / (RECORDS / PACK)

    budget = full_cost / 2
    provider = Answering()
    spent, stopped = _run(tmp_path / "job", provider, budget)
    assert stopped is not None and "--max-cost" in stopped
    assert spent <= budget
    # Worst cases reserved for requests in flight are released as they settle, so the
    # job stops when the next request's worst case (≈1.7 requests here) no longer fits.
    assert spent >= budget - 2 * one_request, (spent, budget, one_request)

    more, stopped_again = _run(tmp_path / "job", provider, full_cost * 2)
    assert stopped_again is None
    paid = _paid(tmp_path / "job")
    assert paid == pytest.approx(spent + more)
    assert paid == pytest.approx(full_cost, rel=0.02)  # nothing paid twice
    sent = [text for texts in provider.sent for text in texts]
    assert len(sent) == len(set(sent)) == RECORDS  # each record sent exactly once over both runs


def test_a_budget_below_one_request_sends_nothing(tmp_path: Path) -> None:
    provider = Answering()
    spent, stopped = _run(tmp_path / "job", provider, 1e-9)
    assert stopped is not None
    assert spent == 0.0 and provider.sent == []


async def test_released_reservations_leave_no_float_residue_to_wait_on() -> None:
    budget = Budget(1.0, spent=lambda: 0.0)
    for projected in (0.1, 0.2, 0.7):
        assert budget.try_reserve(projected)
    for projected in (0.1, 0.7, 0.2):  # summed one way, subtracted another: 2.2e-16 left over
        budget.release(projected)
    assert budget.committed == 0.0
    # Nothing is in flight, so a request that cannot fit is refused at once.
    assert await asyncio.wait_for(budget.reserve(1.5, stopped=lambda: False), timeout=5) is False


async def test_a_request_that_does_not_fit_waits_for_those_in_flight_to_settle() -> None:
    paid = [0.0]
    budget = Budget(1.0, spent=lambda: paid[0])
    assert budget.try_reserve(0.8)  # a worst case
    waiter = asyncio.create_task(budget.reserve(0.5, stopped=lambda: False))
    await asyncio.sleep(0)
    assert not waiter.done()
    paid[0] = 0.3  # it cost far less than its worst case
    budget.release(0.8)
    assert await asyncio.wait_for(waiter, timeout=5) is True
    assert budget.committed == 0.5


# -- the command line ----------------------------------------------------------------------


def test_the_cli_shows_spend_against_the_budget_and_the_budget_covers_the_whole_job(tmp_path: Path) -> None:
    from _e2e_helpers import EXAMPLES, invoke

    def run(max_cost: str) -> tuple[int, str, str]:
        args = ["run", str(EXAMPLES / "reviews.jsonl"), "--task", str(EXAMPLES / "sentiment.toml")]
        args += ["--provider", "sim", "--no-cache", "--batch-size", "5", "--job-dir", str(tmp_path / "job")]
        result = invoke([*args, "--out", str(tmp_path / "out.jsonl"), "--max-cost", max_cost])
        return result.exit_code, result.stdout, result.stderr

    code, table, message = run("0.0005")
    assert code == 4
    assert "of --max-cost $0.0005" in table  # the table still shows what was spent
    assert "run again with a larger --max-cost" in message
    # What was paid for is written; the rest are stopped rows saying how to go on.
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 66 and {row["status"] for row in rows} == {"ok", "stopped"}
    assert all("larger --max-cost" in row["error"] for row in rows if row["status"] == "stopped")
    assert "rows to" in table
    spent = _paid(tmp_path / "job")
    assert 0 < spent <= 0.0005

    # The budget is the job's, over all its runs: the same budget again sends nothing.
    code, table, _ = run("0.0005")
    assert code == 4 and _paid(tmp_path / "job") == spent
    assert f"job ${spent:.4f} of --max-cost" in table

    code, _, _ = run("0.01")
    assert code == 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 66


class Hanging(KeyedFake):
    """Takes the request and never answers (the run is killed or interrupted meanwhile)."""

    async def answer(self, items: dict[str, str], request: Request) -> Completion:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


def test_requests_in_flight_when_a_run_is_cut_short_count_against_the_next_runs_budget(
    tmp_path: Path,
) -> None:
    job = tmp_path / "job"
    store = JobStore.open(job)
    ingest(store, TASK, [Record(i, i, {"id": str(i), "text": f"text {i}"}) for i in range(40)])
    options = RunOptions(batch_size=5, concurrency=4, max_cost=1.0)

    async def cut_short() -> None:
        runner = Runner(TASK, Hanging(), store, options, price=PRICE)
        task = asyncio.ensure_future(runner.run())
        while runner.in_flight < 4:
            await asyncio.sleep(0.01)
        task.cancel()  # Ctrl-C, SIGTERM: four requests were sent and may be charged
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cut_short())
    in_flight = store.get_meta("budget_in_flight")
    assert in_flight > 0  # the journal kept their worst case

    runner = Runner(TASK, Answering(), store, options, price=PRICE)
    metrics = asyncio.run(runner.run())
    assert metrics.spent_before == pytest.approx(in_flight)  # counted as spent, once
    assert store.get_meta("budget_in_flight") == 0.0
    assert runner.budget is not None and runner.budget.spent() <= options.max_cost  # type: ignore[operator]
    store.close()
