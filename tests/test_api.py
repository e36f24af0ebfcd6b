"""The Python API: run / arun / iter_results / aiter_results over in-memory records."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import pydantic
import pytest

import llmbatch
from llmbatch.sim import SimConfig, oracle_answer

REVIEWS = [
    {"id": f"r{i}", "text": text}
    for i, text in enumerate(
        [
            "I love it, excellent",
            "Broken on arrival, terrible",
            "It is okay",
            "Best purchase ever",
            "Awful, refund",
        ]
        * 4
    )
]


class Sentiment(pydantic.BaseModel):
    label: Literal["positive", "negative", "neutral"]
    confidence: float


TASK = llmbatch.Task(instructions="Classify the sentiment of each review.", input="{text}", output=Sentiment)


def _expected(record: dict[str, str]) -> object:
    return oracle_answer(TASK.item_schema, TASK.instructions, TASK.render_input(record))


def test_run_returns_every_result_in_input_order() -> None:
    result = llmbatch.run(TASK, REVIEWS, provider="sim", cache_dir=False, batch_size=4)
    assert [r.id for r in result.results] == [r["id"] for r in REVIEWS]
    assert all(r.status == "ok" for r in result.results)
    assert result.answers == [_expected(r) for r in REVIEWS]
    assert result.metrics["items_ok"] == len(REVIEWS)


async def test_run_works_inside_a_running_event_loop() -> None:
    # A notebook cell runs inside an event loop: the sync API must still work.
    result = llmbatch.run(TASK, REVIEWS[:3], provider="sim", cache_dir=False)
    assert [r.status for r in result.results] == ["ok"] * 3


async def test_arun_with_a_job_dir_resumes_and_the_cache_pays_nothing_twice(tmp_path: Path) -> None:
    first = await llmbatch.arun(TASK, REVIEWS, provider="sim", cache_dir=tmp_path / "cache", batch_size=5)
    again = await llmbatch.arun(TASK, REVIEWS, provider="sim", cache_dir=tmp_path / "cache", batch_size=5)
    assert first.answers == again.answers
    assert again.metrics["requests"] == 0 and again.metrics["items_cached"] == len(REVIEWS)


async def test_aiter_results_yields_each_record_once_as_it_completes() -> None:
    seen = [
        result
        async for result in llmbatch.aiter_results(
            TASK,
            [*REVIEWS, {"id": "bad"}],  # no text: fails at ingest, still yielded
            provider="sim",
            cache_dir=False,
            batch_size=3,
        )
    ]
    assert sorted(r.id for r in seen) == sorted([*(r["id"] for r in REVIEWS), "bad"])
    bad = next(r for r in seen if r.id == "bad")
    assert bad.status == "failed" and "text" in bad.error
    for result in seen:
        if result.status == "ok":
            assert result.answer == _expected(REVIEWS[result.index])


def test_iter_results_streams_from_sync_code() -> None:
    results = list(
        llmbatch.iter_results(
            TASK,
            REVIEWS,
            provider="sim",
            cache_dir=False,
            batch_size=2,
            sim=SimConfig(base_latency=0.01),
        )
    )
    assert len(results) == len(REVIEWS)
    assert {r.status for r in results} == {"ok"}


def test_bad_options_are_usage_errors() -> None:
    with pytest.raises(llmbatch.UsageError):
        asyncio.run(llmbatch.arun(TASK, REVIEWS, provider="nope", cache_dir=False))
