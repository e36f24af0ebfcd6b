"""A runner's ``Steering`` handed to the next runner of the job (a Ray worker's next block):
what the first learnt is where the second starts, and the provider's cache is not warmed twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from llmbatch import Capabilities, Completion, Request, RunOptions, Task
from llmbatch._engine.runner import Runner
from llmbatch._io import Record
from llmbatch._store.ingest import ingest
from llmbatch._store.job import JobStore
from llmbatch.providers.mock import MockProvider, items, reply

TASK = Task(instructions="Echo each text.", input="{text}", output="text")


def echo(request: Request) -> Completion:
    return reply(request, {key: f"echo {text}" for key, text in items(request).items()}, latency=0.05)


def block(tmp_path: Path, name: str, first: int) -> JobStore:
    store = JobStore.open(tmp_path / name)
    ingest(store, TASK, [Record(i, i, {"id": str(i), "text": f"t{i}"}) for i in range(first, first + 60)])
    return store


def test_the_second_block_starts_where_the_first_left_off(tmp_path: Path) -> None:
    provider = MockProvider(echo, capabilities=Capabilities(json_schema=True, warm_up_first=True))
    first = Runner(TASK, provider, block(tmp_path, "a", 0), RunOptions())
    assert first.warm_up
    asyncio.run(first.run())
    learnt = first.steering
    assert set(learnt.best_latency) == {5, 10}  # it grew from 5 on good answers

    second = Runner(TASK, provider, block(tmp_path, "b", 60), RunOptions(), steering=learnt)
    assert not second.warm_up  # the first block warmed the provider's cache
    assert second.sizer is learnt.sizer and second.answers is learnt.answers and second.plan is learnt.plan
    assert second.calibration is learnt.calibration and second.best_latency is learnt.best_latency
    asyncio.run(second.run())
    assert second.store.counts() == {"done": 60}
    # The fresh runner of the second block would have started at 5 again.
    assert Runner(TASK, provider, block(tmp_path, "c", 120), RunOptions()).best_latency == {}
