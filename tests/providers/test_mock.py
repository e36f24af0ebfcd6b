"""``MockProvider``: jobs run against a handler, and ``items``/``reply`` speak every pack format."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import llmbatch
from llmbatch import Capabilities, Completion, Item, JobSpec, RateLimited, Request, RunOptions, Task, run_job
from llmbatch._pack import PACKERS, SEPARATOR
from llmbatch._store.job import JobStore
from llmbatch.providers import PROVIDERS, load_builtin
from llmbatch.providers.mock import PLAIN, MockProvider, items, reply

LABEL = Task(
    instructions="Label each text.",
    input="{text}",
    output={"type": "object", "properties": {"label": {"enum": ["short", "long"]}}, "required": ["label"]},
)
RECORDS = [{"id": f"r{i}", "text": "word " * i} for i in range(1, 13)]


def label(text: str) -> dict[str, str]:
    return {"label": "long" if len(text.split()) > 6 else "short"}


def answer_each(request: Request) -> Completion:
    return reply(request, {key: label(text) for key, text in items(request).items()})


def spec(tmp_path: Path, **options: Any) -> JobSpec:
    return JobSpec(
        task=LABEL,
        input="<records>",
        output=None,
        job_dir=tmp_path / "job",
        options=RunOptions(**options),
        records=RECORDS,
    )


def answers(job: llmbatch.JobResult) -> dict[Any, Any]:
    store = JobStore.open(job.job_dir, readonly=True)
    try:
        return {r.id: r.answer for r in store.results()}
    finally:
        store.close()


EXPECTED = {record["id"]: label(str(record["text"])) for record in RECORDS}


async def test_a_job_runs_on_a_handler_that_answers_each_key(tmp_path: Path) -> None:
    provider = MockProvider(answer_each)
    job = await run_job(spec(tmp_path, batch_size=4), provider)
    assert job.counts == {"done": len(RECORDS)}
    assert answers(job) == EXPECTED
    assert len(provider.requests) == 3 and {r.mode for r in provider.requests} == {"json_schema"}


async def test_an_async_handler_is_awaited(tmp_path: Path) -> None:
    async def slow(request: Request) -> Completion:
        await asyncio.sleep(0.001)
        return answer_each(request)

    job = await run_job(spec(tmp_path, batch_size=5), MockProvider(slow))
    assert job.counts == {"done": len(RECORDS)}
    assert answers(job) == EXPECTED


async def test_a_rate_limit_from_the_handler_is_waited_out_and_retried(tmp_path: Path) -> None:
    calls = 0

    def limited(request: Request) -> Completion:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RateLimited("429 slow down", retry_after=0.01)
        return answer_each(request)

    provider = MockProvider(limited)
    job = await run_job(spec(tmp_path, batch_size=12, concurrency=1), provider)
    assert job.counts == {"done": len(RECORDS)}
    assert answers(job) == EXPECTED
    # The same pack, resent until it passed: nothing split, nothing failed.
    assert [len(items(r)) for r in provider.requests] == [12, 12, 12]
    summary = job.metrics.summary()
    assert (summary["rate_limited"], summary["splits"], summary["items_failed"]) == (2, 0, 0)


@pytest.mark.parametrize(
    ("capabilities", "pack", "mode"),
    [
        (Capabilities(json_schema=True), "json", "json_schema"),
        (Capabilities(), "numbered", "text"),
        (Capabilities(tools=True), "tools", "tool"),
    ],
)
async def test_capabilities_are_chosen_per_instance(
    tmp_path: Path, capabilities: Capabilities, pack: str, mode: str
) -> None:
    provider = MockProvider(answer_each, capabilities=capabilities)
    assert provider.default_pack == pack
    assert MockProvider.capabilities == Capabilities()  # the class is left as it was
    job = await run_job(spec(tmp_path, batch_size=4), provider)
    assert job.counts == {"done": len(RECORDS)}
    assert answers(job) == EXPECTED
    assert {r.mode for r in provider.requests} == {mode}


def test_the_library_api_runs_it_registered_under_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # llmbatch.run takes a provider's name: a plug-in registered in PROVIDERS is one.
    monkeypatch.setitem(PROVIDERS, "mine", lambda config: MockProvider(answer_each, model="m"))
    result = llmbatch.run(LABEL, RECORDS, provider="mine", cache_dir=False)
    assert [r.status for r in result.results] == ["ok"] * len(RECORDS)
    assert result.answers == list(EXPECTED.values())


async def test_a_handler_that_returns_no_completion_says_what_to_return() -> None:
    provider = MockProvider(lambda request: "positive")  # type: ignore[arg-type, return-value]
    request = PACKERS["json"].render(LABEL, [Item(0, "a", "x")])
    with pytest.raises(TypeError, match=r"returned str, not a Completion: return reply\(request"):
        await provider.complete(request)


def test_it_is_exported_and_no_cli_choice() -> None:
    load_builtin()
    assert "mock" not in PROVIDERS
    assert llmbatch.providers.MockProvider is MockProvider
    assert MockProvider(answer_each).endpoint == "mock"


# -- items() and reply() against the packers' own render and parse --------------------------

TASKS = {
    "text": Task(instructions="Echo.", input="{text}", output="text"),
    "lone field": LABEL,
    "two fields": Task(
        instructions="Label.",
        input="{text}",
        output={
            "type": "object",
            "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
            "required": ["label", "score"],
        },
    ),
    "lone object field": Task(
        instructions="Nest.",
        input="{text}",
        output={
            "type": "object",
            "properties": {"info": {"type": "object", "properties": {"n": {"type": "integer"}}}},
            "required": ["info"],
        },
    ),
    "not an object": Task(
        instructions="List.", input="{text}", output={"type": "array", "items": {"type": "string"}}
    ),
}
ANSWERS: dict[str, Any] = {
    "text": lambda text: text,
    "lone field": label,
    "two fields": lambda text: {"label": text[:3], "score": len(text)},
    "lone object field": lambda text: {"info": {"n": len(text)}},
    "not an object": lambda text: text.split(),
}
# Texts a line-based layout could trip on: quotes, line breaks, a separator, keys.
TEXTS = ['say "hi"', "two\nlines\u2028and more", f"a\n{SEPARATOR}\nb", "k1: 42"]
SHAPES = [
    (pack, shape, n)
    for pack in PACKERS
    for shape in TASKS
    for n in (1, 2, 4)
    if shape == "text" or not PACKERS[pack].text_only
]


@pytest.mark.parametrize(("pack", "shape", "n"), SHAPES, ids=[f"{p}-{s}-{n}" for p, s, n in SHAPES])
@pytest.mark.parametrize("schema_in_prompt", [False, True])
def test_items_and_reply_round_trip_through_the_packer(
    pack: str, shape: str, n: int, schema_in_prompt: bool
) -> None:
    task, answer = TASKS[shape], ANSWERS[shape]
    packer = PACKERS[pack].with_schema_in_prompt() if schema_in_prompt else PACKERS[pack]
    texts = TEXTS[:n] if n > 1 else ["42"]  # a lone text answer that parses as JSON stays text
    if pack == "separator":
        texts = [text.replace("\n", " ") for text in texts]  # free text answers, one line each
    pack_items = [Item(10 + i, f"id{i}", text) for i, text in enumerate(texts)]
    request = packer.render(task, pack_items)

    sent = items(request)
    assert list(sent.values()) == texts
    if n == 1:
        assert list(sent) == [PLAIN]
    elif pack == "separator":  # answered by position: the keys are places
        assert list(sent) == [f"k{place}" for place in range(1, n + 1)]
    else:
        assert list(sent) == packer.keys(pack_items)

    completion = reply(request, {key: answer(text) for key, text in sent.items()})
    outcomes = packer.parse(task, pack_items, completion)
    assert [o.status for o in outcomes.values()] == ["ok"] * n, outcomes
    assert [o.answer for o in outcomes.values()] == [answer(text) for text in texts]


def test_a_key_left_out_is_a_missing_item_and_usage_defaults_to_the_estimate() -> None:
    pack_items = [Item(0, "a", "one"), Item(1, "b", "two words here and more text")]
    request = PACKERS["numbered"].render(LABEL, pack_items)
    (first, _) = items(request)
    completion = reply(request, {first: label("one")})
    assert completion.content == 'k0: "short"'
    assert completion.usage.prompt_tokens == request.est_prompt_tokens
    assert completion.usage.completion_tokens > 0
    outcomes = PACKERS["numbered"].parse(LABEL, pack_items, completion)
    assert [o.status for o in outcomes.values()] == ["ok", "missing"]
