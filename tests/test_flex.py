"""``--mode flex``: requests at the flex tier, "resource unavailable" retried on its own terms,
and the stragglers' fallback (default tier, batch API, or failed).

The runner is driven by a ``MockProvider`` on a fake clock, so backoffs and the flex
deadline pass instantly; the simulator's flex tier is exercised end to end in
``test_flex_e2e.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from _time import FakeClock
from llmbatch import CapacityUnavailable, Completion, RateLimited, Request, RunOptions, Task
from llmbatch._engine.policy import RetryPolicy
from llmbatch._engine.runner import Runner
from llmbatch._io import Record
from llmbatch._metrics import Metrics
from llmbatch._pricing import Price
from llmbatch._store.ingest import ingest
from llmbatch._store.job import JobStore
from llmbatch._types import Capabilities
from llmbatch.providers.mock import MockProvider, items, reply

TASK = Task(instructions="Echo each text.", input="{text}", output="text")
RECORDS = 60
PRICE = Price(input=1.0, output=4.0, batch=0.5)
FLEX = Capabilities(json_schema=True, flex=True)


def answer(request: Request) -> Completion:
    """What a model with a flex tier answers: every item, naming the tier that served it."""
    done = reply(request, {key: f"echo {text}" for key, text in items(request).items()})
    return dataclasses.replace(done, service_tier=request.service_tier or "default")


def unavailable_every(n: int) -> Callable[[Request], Completion]:
    """Flex without capacity for every n-th flex request (a 1/n share), answered otherwise."""
    calls = 0

    def handler(request: Request) -> Completion:
        nonlocal calls
        if request.service_tier == "flex":
            calls += 1
            if calls % n == 0:
                raise CapacityUnavailable("HTTP 429: Resource Unavailable", status=429)
        return answer(request)

    return handler


def never_flex(request: Request) -> Completion:
    if request.service_tier == "flex":
        raise CapacityUnavailable("HTTP 429: Resource Unavailable", status=429)
    return answer(request)


def run(
    tmp_path: Path, handler: Callable[[Request], Completion], **options: object
) -> tuple[Metrics, MockProvider, JobStore, Runner]:
    provider = MockProvider(handler, capabilities=FLEX)
    store = JobStore.open(tmp_path)
    ingest(store, TASK, [Record(i, i, {"id": str(i), "text": f"t{i}"}) for i in range(RECORDS)])
    clock = FakeClock(1000.0)
    runner = Runner(
        TASK,
        provider,
        store,
        RunOptions(batch_size=5, **options),  # type: ignore[arg-type]
        price=PRICE,
        clock=clock,
        sleep=clock.sleep,
    )
    return asyncio.run(runner.run()), provider, store, runner


def statuses(store: JobStore) -> dict[str, int]:
    return {str(status): count for status, count in store.counts().items()}


def test_flex_asks_for_the_tier_and_pays_the_batch_price(tmp_path: Path) -> None:
    flex, provider, _, _ = run(tmp_path / "flex", answer, mode="flex")
    sync, _, _, _ = run(tmp_path / "sync", answer, mode="sync")
    assert {r.service_tier for r in provider.requests} == {"flex"}
    assert flex.items_ok == sync.items_ok == RECORDS
    assert flex.cost == pytest.approx(sync.cost * 0.5)


@pytest.fixture
def pressure(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every time the concurrency controller is told to back off (a 429 or a timeout)."""
    heard: list[float] = []
    monkeypatch.setattr(
        "llmbatch._engine.control.ConcurrencyControl.on_pressure",
        lambda self, best: heard.append(best),
    )
    return heard


def test_a_fifth_unavailable_finishes_every_record_and_never_shrinks_concurrency(
    tmp_path: Path, pressure: list[float]
) -> None:
    metrics, provider, store, _ = run(tmp_path, unavailable_every(5), mode="flex")
    assert statuses(store) == {"done": RECORDS}
    assert metrics.requests_failed["unavailable"] >= len(provider.requests) // 5 - 1 > 0
    assert pressure == [], "flex's 'resource unavailable' shrank the concurrency as a 429 would"
    assert metrics.rate_limited == 0 and metrics.flex_fallbacks == 0


def test_the_spy_sees_a_real_rate_limit_shrink_concurrency(tmp_path: Path, pressure: list[float]) -> None:
    """The control for the test above: its spy does hear a rate limit."""
    calls = 0

    def limited_once(request: Request) -> Completion:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RateLimited("HTTP 429: Rate limit reached", retry_after=0.5)
        return answer(request)

    run(tmp_path, limited_once, mode="flex")
    assert len(pressure) == 1


def test_past_the_deadline_stragglers_are_sent_at_the_default_tier_and_priced_so(tmp_path: Path) -> None:
    policy = RetryPolicy(flex_deadline=30.0, flex_fallback="sync")
    metrics, provider, store, _ = run(tmp_path, never_flex, mode="flex", policy=policy)
    assert statuses(store) == {"done": RECORDS}
    assert metrics.flex_fallbacks == RECORDS
    answered_by = [r.service_tier for r in provider.requests]
    assert set(answered_by) == {"flex", None}
    # Every record was paid at the full price: none was served by flex.
    sync, _, _, _ = run(tmp_path / "sync", answer, mode="sync")
    assert metrics.cost == pytest.approx(sync.cost)


def test_with_fail_the_stragglers_fail_as_unavailable_and_a_rerun_asks_again(tmp_path: Path) -> None:
    policy = RetryPolicy(flex_deadline=30.0, flex_fallback="fail")
    _, provider, store, _ = run(tmp_path, never_flex, mode="flex", policy=policy)
    assert statuses(store) == {"failed": RECORDS}
    assert {r.service_tier for r in provider.requests} == {"flex"}
    assert store.failures_by_kind() == {"unavailable": RECORDS}
    assert store.retry_failed(["unavailable"]) == {"unavailable": RECORDS}
    store.close()
