"""Chaos (issue 3 acceptance): 2,000 records through a simulator that misbehaves in every way.

10% 5xx, 2% hangs past the client's timeout, a 300 RPM limit, 5% dropped items,
3% corrupt items, 2% truncated and 2% malformed answers (and, for numbered
packs, 2% misnumbered items). Every record must be accounted for, at least
99.9% answered, and every answer must be the oracle's answer for that very
record: an answer attached to the wrong record fails the test.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _e2e_helpers import (
    API_KEY,
    answer_of,
    expected_answer,
    invoke,
    load_task,
    metrics_rows,
    read_jsonl,
    review_records,
    run_args,
    table_numbers,
    write_jsonl,
)
from llmbatch.sim.server import ThreadedServer

RECORDS = 2000
FAULTS: dict[str, Any] = {
    "error_rate": 0.10,
    "timeout_rate": 0.02,
    # Longer than the client's --timeout of 1 s; the handler is cancelled when the client hangs up.
    "hang_seconds": 5.0,
    "rate_limit_rpm": 300,
    "drop_rate": 0.05,
    "corrupt_rate": 0.03,
    "truncate_rate": 0.02,
    "malformed_rate": 0.02,
}


class Neighbour(threading.Thread):
    """Another client on the same account, racing llmbatch for the request allowance.

    llmbatch learns the limit from the ``x-ratelimit-*`` headers and paces itself,
    so on its own it rarely meets a 429; another client spending the same
    allowance is what makes 429s happen in real life. This one sends ``pace``
    requests a second until the bucket runs dry (its own first 429), then
    ``race`` a second for ``seconds`` — taking each token as it refills, so some
    of llmbatch's paced requests find none — then stops.
    """

    def __init__(self, base_url: str, *, pace: float = 5, race: float = 50, seconds: float = 6) -> None:
        super().__init__(name="neighbour", daemon=True)
        self.url = base_url + "/chat/completions"
        self.pace, self.race, self.seconds = pace, race, seconds
        self.halt = threading.Event()
        self.statuses: Counter[int] = Counter()

    def run(self) -> None:
        sent = 0
        while not self.halt.is_set() and not self.statuses[429]:
            self.statuses[self._send(sent)] += 1
            sent += 1
            self.halt.wait(1 / self.pace)
        end = time.monotonic() + self.seconds
        while not self.halt.is_set() and time.monotonic() < end:
            self.statuses[self._send(sent)] += 1
            sent += 1
            self.halt.wait(1 / self.race)

    def _send(self, n: int) -> int:
        body = {"model": "sim-1", "messages": [{"role": "user", "content": f"hello {n}"}], "max_tokens": 16}
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code
        except OSError:  # a hang past our timeout, like any client
            return 0

    def __enter__(self) -> Neighbour:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt.set()
        self.join(timeout=10)


# json runs with the defaults: the acceptance run. numbered adds misnumbering, and
# drops hit it too (constrained decoding keeps json keys, not numbered lines), so an
# item fails an attempt ~12% of the time: measured, 3 attempts leave 2-6 of 2,000
# records failed (above the 0.1% allowed), 4 leave ~0.5 on average (a third failure
# in ~1% of runs), 5 leave ~0.06.
RUNS = [
    pytest.param("json", {}, [], False, id="json"),
    pytest.param("numbered", {"misnumber_rate": 0.02}, ["--max-attempts", "5"], True, id="numbered"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("pack", "extra_faults", "extra_args", "neighbour"), RUNS)
def test_every_record_accounted_for_and_every_answer_its_own(
    tmp_path: Path,
    sim_thread: Callable[..., ThreadedServer],
    pack: str,
    extra_faults: dict[str, Any],
    extra_args: list[str],
    neighbour: bool,
) -> None:
    records = review_records(RECORDS, seed=3)
    source = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    sim = sim_thread(seed=11, **FAULTS, **extra_faults)
    args = run_args(source, "sentiment", out, tmp_path / "job", sim.base_url, "--pack", pack, concurrency=8)
    args += ["--api-key", API_KEY, "--no-cache", "--timeout", "1", *extra_args]

    other = Neighbour(sim.base_url) if neighbour else None
    if other is not None:
        with other:
            result = invoke(args)
    else:
        result = invoke(args)
    stats = sim.stats()

    rows = read_jsonl(out)
    ids = [row["id"] for row in rows]
    assert ids == [r["id"] for r in records], "rows missing, duplicated or out of order"
    assert len(set(ids)) == RECORDS
    ok = [row for row in rows if row["status"] == "ok"]
    failed = [row for row in rows if row["status"] == "failed"]
    assert len(ok) + len(failed) == RECORDS
    assert len(ok) >= 0.999 * RECORDS, [(row["id"], row["error"]) for row in failed]
    assert all(row["error"] for row in failed), "a failed row without a reason"
    assert result.exit_code == (3 if failed else 0), result.output

    task = load_task("sentiment")
    by_id = {r["id"]: r for r in records}
    wrong = [row["id"] for row in ok if answer_of(task, row) != expected_answer(task, pack, by_id[row["id"]])]
    assert not wrong, f"answers attached to the wrong record: {wrong}"

    table = metrics_rows(result.stdout)
    assert table["records"] == f"2,000 ({len(ok):,} ok, {len(failed)} failed)"
    retries, splits = table_numbers(table, "retries / splits")
    rate_limited, timeouts = table_numbers(table, "429s / timeouts")
    assert retries > 0 and splits > 0
    # Every hang the server drew for us was a timeout here (2% of ~150 requests: none is
    # possible, as pack sizes, and so the draws, follow the run's timing). A reply slowed
    # past --timeout by a loaded machine is a timeout too, so at least as many.
    hangs = stats["faults"].get("timeout", 0) - (other.statuses[0] if other is not None else 0)
    assert timeouts >= hangs, (timeouts, hangs)
    assert "server_error" in table["failed requests by kind"]
    ours = stats["by_status"].get("429", 0) - (other.statuses[429] if other is not None else 0)
    assert rate_limited == ours, "the summary's 429s are not the ones the server sent"
    if other is not None:
        assert rate_limited > 0, "the 300 RPM limit never bit"
