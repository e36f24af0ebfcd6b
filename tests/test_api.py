"""The Python API: run / arun / iter_results / aiter_results over in-memory records."""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path
from typing import Any, Literal, NoReturn

import pydantic
import pytest

import llmbatch
import llmbatch._api
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


# -- options are checked before anything is built or sent -------------------------------


def _call(function: str, **options: Any) -> None:
    """Call one of the four API functions as a user would, up to its first result."""
    if function == "run":
        llmbatch.run(TASK, REVIEWS, **options)
    elif function == "arun":
        asyncio.run(llmbatch.arun(TASK, REVIEWS, **options))
    elif function == "iter_results":
        llmbatch.iter_results(TASK, REVIEWS, **options)  # raises when called, not when iterated
    else:
        llmbatch.aiter_results(TASK, REVIEWS, **options)


@pytest.fixture
def nothing_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a provider is made: a bad option must stop the call before that."""

    def refuse(*args: object) -> NoReturn:
        raise AssertionError(f"a provider was made despite a bad option: {args}")

    monkeypatch.setattr(llmbatch._api, "create_provider", refuse)


FUNCTIONS = ["run", "arun", "iter_results", "aiter_results"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_misspelt_option_is_a_type_error_with_the_close_match(function: str, nothing_built: None) -> None:
    # It used to reach the provider as an "extra" option: provder="sim" ran against the
    # endpoint in the environment, not the simulator.
    with pytest.raises(TypeError) as info:
        _call(function, provder="sim")
    assert (
        str(info.value)
        == f"{function}() got an unexpected keyword argument 'provder' (did you mean 'provider'?)"
    )


def test_every_misspelt_option_is_named_at_once(nothing_built: None) -> None:
    with pytest.raises(TypeError) as info:
        # Misspelt on purpose: run() must name both in one TypeError.
        llmbatch.run(TASK, REVIEWS, provider="sim", max_costs=0.0001, concurency=1)  # type: ignore[call-arg]
    message = str(info.value)
    assert "'max_costs' (did you mean 'max_cost'?)" in message
    assert "'concurency' (did you mean 'concurrency'?)" in message


def test_a_task_field_given_to_run_says_where_it_belongs(nothing_built: None) -> None:
    with pytest.raises(TypeError, match=r"'temperature' \(it is a Task field"):
        # Not an option of run() on purpose: the error must point to the Task.
        llmbatch.run(TASK, REVIEWS, provider="sim", temperature=0.7)  # type: ignore[call-arg]


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"concurrency": 0}, "concurrency must be a whole number from 1 to 1000, or None, not 0"),
        ({"concurrency": "8"}, "concurrency must be a whole number from 1 to 1000, or None, not '8'"),
        ({"max_cost": -1}, "max_cost must be a number above 0, or None, not -1"),
        ({"mode": "fast"}, "mode must be 'sync', 'flex' or 'batch', not 'fast'"),
        ({"flex_fallback": "later"}, "flex_fallback must be 'sync', 'batch' or 'fail', not 'later'"),
        ({"flex_deadline": "soon"}, "flex_deadline must be seconds (at least 0) or a duration"),
        ({"batch_size": "big"}, "batch_size must be a whole number from 1 to 1000, 'auto' or None"),
        ({"batch_size": 0}, "batch_size must be"),
        ({"timeout": True}, "timeout must be a number above 0, not True"),
        ({"shuffle": 1}, "shuffle must be True or False, not 1"),
        ({"max_attempts": 0}, "max_attempts must be a whole number from 1 to 20"),
        ({"pack": "jsn"}, "unknown pack format 'jsn' (did you mean 'json'?)"),
        ({"cache_dir": 3}, "cache_dir must be a folder"),
        ({"n_ctx": 2048}, "n_ctx is read only by the local provider, not sim"),
    ],
    ids=lambda value: str(value) if isinstance(value, dict) else "",
)
def test_a_bad_option_value_is_a_usage_error(
    function: str, options: dict[str, Any], fragment: str, nothing_built: None
) -> None:
    with pytest.raises(llmbatch.UsageError) as info:
        _call(function, provider="sim", **options)
    assert str(info.value).startswith(f"{function}(): ")
    assert fragment in str(info.value)


def test_every_bad_value_is_named_in_one_line(nothing_built: None) -> None:
    with pytest.raises(llmbatch.UsageError) as info:
        llmbatch.run(
            TASK,
            REVIEWS,
            provider="sim",
            concurrency=0,
            max_cost=-1,
            mode="fast",  # type: ignore[arg-type]  # not a mode, on purpose
        )
    message = str(info.value)
    assert "\n" not in message
    assert all(name in message for name in ("concurrency", "max_cost", "mode"))


def test_a_bad_api_key_value_is_not_echoed(nothing_built: None) -> None:
    with pytest.raises(llmbatch.UsageError) as info:
        # bytes on purpose: a bad value must be rejected without being echoed.
        llmbatch.run(TASK, REVIEWS, provider="sim", api_key=b"sk-secret-123")  # type: ignore[arg-type]
    assert "api_key" in str(info.value) and "sk-secret" not in str(info.value)


@pytest.mark.parametrize(
    ("task", "records", "fragment"),
    [
        (TASK, {"id": "a", "text": "x"}, "records must be an iterable of dicts"),
        (TASK, "I love it", "records must be an iterable of dicts"),
        (TASK, [{"text": "x"}, "I love it"], "record 2 is str, not a dict"),
        ("sentiment.toml", REVIEWS, "task must be a llmbatch.Task"),
    ],
    ids=["dict", "str", "str-record", "task-path"],
)
def test_bad_records_or_task_are_usage_errors(task: Any, records: Any, fragment: str) -> None:
    with pytest.raises(llmbatch.UsageError, match=re.escape(fragment)):
        llmbatch.run(task, records, provider="sim", cache_dir=False)


@pytest.mark.parametrize("batch_size", ["auto", None])
def test_batch_size_auto_or_none_is_adaptive_as_on_the_command_line(
    batch_size: Literal["auto"] | None,
) -> None:
    result = llmbatch.run(TASK, REVIEWS, provider="sim", cache_dir=False, batch_size=batch_size)
    assert result.metrics["items_ok"] == len(REVIEWS)


def test_the_timeout_reaches_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    # It used to set only the runner's timeout: the SDK client kept its 120 s.
    seen: list[llmbatch.ProviderConfig] = []

    def capture(name: str, config: llmbatch.ProviderConfig) -> NoReturn:
        seen.append(config)
        raise llmbatch.UsageError("captured")

    monkeypatch.setattr(llmbatch._api, "create_provider", capture)
    with pytest.raises(llmbatch.UsageError, match="captured"):
        llmbatch.run(TASK, REVIEWS, provider="sim", timeout=5, cache_dir=False)
    assert seen[0].timeout == 5


def test_a_missing_api_key_is_the_providers_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Python API's default provider is openai (the CLI's is local or sim): without a key
    # it must say which variable to set, and leave no job folder behind.
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(llmbatch.UsageError, match="OPENAI_API_KEY"):
        llmbatch.run(TASK, REVIEWS, cache_dir=False)
    assert list(tmp_path.iterdir()) == []


def test_restart_forgets_the_job_in_job_dir(tmp_path: Path) -> None:
    first = llmbatch.run(TASK, REVIEWS, provider="sim", job_dir=tmp_path / "job", cache_dir=False)
    resumed = llmbatch.run(TASK, REVIEWS, provider="sim", job_dir=tmp_path / "job", cache_dir=False)
    restarted = llmbatch.run(
        TASK, REVIEWS, provider="sim", job_dir=tmp_path / "job", cache_dir=False, restart=True
    )
    assert first.metrics["requests"] > 0 and resumed.metrics["requests"] == 0
    assert restarted.metrics["requests"] > 0
    assert restarted.answers == first.answers


def test_help_documents_every_option() -> None:
    for function in (llmbatch.run, llmbatch.arun, llmbatch.iter_results, llmbatch.aiter_results):
        doc = function.__doc__ or ""
        for name in ("provider", "model", "batch_size", "concurrency", "max_cost", "n_ctx", "job_dir"):
            assert f"``{name}``" in doc, (function.__name__, name)
