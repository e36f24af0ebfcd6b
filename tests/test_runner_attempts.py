"""The attempts cap holds on every path, including a truncated answer on the last attempt."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from _fakes import KeyedFake, reply_content
from llmbatch import Completion, Request, RunOptions, Task, Usage
from llmbatch._engine.runner import Runner
from llmbatch._io import Record
from llmbatch._store.ingest import ingest
from llmbatch._store.job import JobStore

TASK = Task(instructions="Echo each text.", input="{text}", output="text")
STUBBORN = "t0"


class Stubborn(KeyedFake):
    """Answers every item but t0: skips it twice, then cuts its lone answer off."""

    async def answer(self, items: dict[str, str], request: Request) -> Completion:
        seen = sum(STUBBORN in texts for texts in self.sent)
        answer = {key: f"answer {text}" for key, text in items.items() if text != STUBBORN}
        finish = "stop"
        if list(items.values()) == [STUBBORN] and seen >= 3:
            answer, finish = {key: "answer" for key in items}, "length"
        return Completion(reply_content(request, answer), finish, Usage(50, 10), latency=0.0)


def test_a_lone_item_cut_off_on_its_last_attempt_fails_instead_of_a_fourth_try(tmp_path: Path) -> None:
    provider = Stubborn()
    store = JobStore.open(tmp_path)
    ingest(store, TASK, [Record(i, i, {"id": str(i), "text": f"t{i}"}) for i in range(4)])
    metrics = asyncio.run(Runner(TASK, provider, store, RunOptions(batch_size=4, concurrency=1)).run())
    store.close()
    assert metrics.summary()["first_try_rate"] == 0.75  # 3 of the 4 first answers were valid

    assert sum(STUBBORN in texts for texts in provider.sent) == 3  # max_attempts, no boosted 4th
    db = sqlite3.connect(tmp_path / "job.sqlite")
    status, attempts, kind = db.execute(
        "SELECT status, attempts, error_kind FROM items WHERE idx = 0"
    ).fetchone()
    assert (status, attempts, kind) == ("failed", 3, "truncated")
    # Each request row carries the attempt it was (0 = first try), read before its outcome.
    rows = db.execute("SELECT keys, attempt FROM requests ORDER BY id").fetchall()
    assert [attempt for keys, attempt in rows if 0 in json.loads(keys)] == [0, 1, 2]
