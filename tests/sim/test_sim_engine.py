from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sim_testkit import (
    HOSTILE_TEXTS,
    content_of,
    example_items,
    load_task,
    make_engine,
    openai_body,
    roundtrip,
)

from _time import FakeClock
from llmbatch._pack import PACKERS
from llmbatch._pack.tokens import MESSAGE_OVERHEAD, count_tokens
from llmbatch._task import Task, canonical_json
from llmbatch._types import Item
from llmbatch.sim import SimConfig, SimEngine, oracle_answer

STRUCTURED = ["json", "tools", "numbered"]


def hostile_items(task_name: str) -> list[Item]:
    task = load_task(task_name)
    items = example_items(task_name, task)[:6]
    start = 1000
    return items + [Item(start + i, f"h{i}", text) for i, text in enumerate(HOSTILE_TEXTS)]


def assert_all_ok(task: Task, items: list[Item], result: Any) -> None:
    assert result.response.status == 200
    for item in items:
        outcome = result.outcomes[item.key]
        assert outcome.status == "ok", (item.text, outcome)
        assert outcome.answer == oracle_answer(task.item_schema, result.request.system, item.text)


@pytest.mark.parametrize(
    ("fmt", "task_name"),
    [(fmt, name) for fmt in STRUCTURED for name in ("sentiment", "translate")] + [("separator", "translate")],
)
async def test_every_item_gets_its_own_answer(fmt: str, task_name: str) -> None:
    task = load_task(task_name)
    items = hostile_items(task_name)
    result = await roundtrip(make_engine(), fmt, task, items)
    assert_all_ok(task, items, result)
    assert result.response.body["usage"]["prompt_tokens"] == result.request.est_prompt_tokens


@pytest.mark.parametrize("fmt", STRUCTURED)
async def test_extract_task_over_all_messages(fmt: str) -> None:
    task = load_task("extract")
    items = example_items("extract", task)
    engine = make_engine()
    for start in range(0, len(items), 15):
        pack = items[start : start + 15]
        result = await roundtrip(engine, fmt, task, pack)
        assert_all_ok(task, pack, result)
        assert result.response.body["usage"]["prompt_tokens"] == result.request.est_prompt_tokens


async def test_single_item_packs() -> None:
    task = load_task("sentiment")
    item = [Item(7, "r", "Great kettle, love it")]
    for fmt in STRUCTURED:
        assert_all_ok(task, item, await roundtrip(make_engine(), fmt, task, item))


async def test_response_looks_like_openai() -> None:
    task = load_task("sentiment")
    items = example_items("sentiment", task)[:3]
    result = await roundtrip(make_engine(wall_clock=lambda: 1700000000.5), "tools", task, items)
    body = result.response.body
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["created"] == 1700000000
    assert body["model"] == "sim-1"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "answers"
    assert call["id"].startswith("call_")
    usage = body["usage"]
    assert usage["completion_tokens"] == count_tokens(call["function"]["arguments"])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert result.response.headers["x-request-id"] == body["id"]


async def test_json_pack_answers_in_required_order() -> None:
    task = load_task("sentiment")
    items = example_items("sentiment", task)[:5][::-1]
    result = await roundtrip(make_engine(), "json", task, items)
    assert list(json.loads(content_of(result.response))) == PACKERS["json"].keys(items)


async def test_plain_prompts() -> None:
    engine = make_engine()
    messages = [{"role": "user", "content": "Translate to Spanish: good morning"}]
    response = await engine.chat({"model": "gpt-x", "messages": messages})
    assert response.status == 200
    assert response.body["model"] == "gpt-x"
    assert content_of(response) == oracle_answer(
        {"type": "string"}, "Translate to Spanish: good morning", "Translate to Spanish: good morning"
    )
    assert response.body["usage"]["prompt_tokens"] == count_tokens(messages[0]["content"]) + MESSAGE_OVERHEAD

    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["positive", "negative"]}},
        "required": ["label"],
        "additionalProperties": False,
    }
    system = {"role": "system", "content": "Classify the review."}
    user = {"role": "user", "content": "I love it"}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    response = await engine.chat({"messages": [system, user], "response_format": fmt})
    assert content_of(response) == '{"label":"positive"}'
    expected = 2 * MESSAGE_OVERHEAD + count_tokens("Classify the review.") + count_tokens("I love it")
    assert response.body["usage"]["prompt_tokens"] == expected + count_tokens(canonical_json(schema))

    response = await engine.chat({"messages": [user], "response_format": {"type": "json_object"}})
    assert set(json.loads(content_of(response))) == {"answer"}

    tool = {"type": "function", "function": {"name": "classify", "parameters": schema}}
    response = await engine.chat({"messages": [system, user], "tools": [tool], "tool_choice": "required"})
    message = response.body["choices"][0]["message"]
    assert message["tool_calls"][0]["function"] == {"name": "classify", "arguments": '{"label":"positive"}'}
    assert response.body["choices"][0]["finish_reason"] == "tool_calls"


async def test_content_parts_are_read_as_text() -> None:
    parts = [{"type": "text", "text": "one two"}, {"type": "text", "text": "three"}]
    response = await make_engine().chat({"messages": [{"role": "user", "content": parts}]})
    assert content_of(response) == "three two one"


@pytest.mark.parametrize("fmt", ["json", "numbered"])
async def test_answer_is_cut_to_max_tokens(fmt: str) -> None:
    task = load_task("sentiment")
    items = example_items("sentiment", task)[:10]
    request = PACKERS[fmt].render(task, items)
    body = openai_body(fmt, request)
    body.pop("max_tokens")
    body["max_completion_tokens"] = 25
    response = await make_engine().chat(body)
    assert response.body["choices"][0]["finish_reason"] == "length"
    assert response.body["usage"]["completion_tokens"] <= 25
    assert count_tokens(content_of(response)) == response.body["usage"]["completion_tokens"]
    full = await make_engine().chat(openai_body(fmt, request))
    assert content_of(full).startswith(content_of(response))


async def test_latency_is_computed_and_scaled() -> None:
    clock = FakeClock()
    config = SimConfig(base_latency=0.5, per_input_token=0.01, per_output_token=0.1, time_scale=0.5)
    engine = SimEngine(config, sleep=clock.sleep)
    response = await engine.chat({"messages": [{"role": "user", "content": "a b c"}]})
    usage = response.body["usage"]
    expected = (0.5 + 0.01 * usage["prompt_tokens"] + 0.1 * usage["completion_tokens"]) * 0.5
    assert clock.sleeps == [pytest.approx(expected)]


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {},
        {"messages": []},
        {"messages": "hi"},
        {"messages": [{"role": "robot", "content": "hi"}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "system", "content": "only a system prompt"}]},
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": "10"},
        {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "yaml"}},
        {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_schema"}},
        {"messages": [{"role": "user", "content": "hi"}], "stream": True},
        {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]},
        {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "a"}}],
            "tool_choice": {"type": "function", "function": {"name": "b"}},
        },
    ],
)
async def test_malformed_bodies_get_400(body: Any) -> None:
    engine = make_engine()
    response = await engine.chat(body)
    assert response.status == 400
    assert response.body["error"]["type"] == "invalid_request_error"
    assert response.body["error"]["message"]
    assert engine.stats.by_status[400] == 1


async def test_max_concurrency_queues_requests() -> None:
    gate = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await gate.wait()

    engine = SimEngine(SimConfig(max_concurrency=2), sleep=sleep)
    bodies = [{"messages": [{"role": "user", "content": f"text {i}"}]} for i in range(6)]
    tasks = [asyncio.create_task(engine.chat(body)) for body in bodies]
    for _ in range(20):
        await asyncio.sleep(0)
    assert engine.stats.in_flight == 6
    assert engine.stats.max_active == 2
    gate.set()
    responses = await asyncio.gather(*tasks)
    assert [r.status for r in responses] == [200] * 6
    assert engine.stats.max_concurrent == 6 and engine.stats.max_active == 2


async def test_stats_count_items_tokens_and_pack_sizes() -> None:
    task = load_task("sentiment")
    items = example_items("sentiment", task)
    engine = make_engine()
    usage = 0
    for size in (3, 3, 5):
        result = await roundtrip(engine, "json", task, items[:size])
        usage += result.response.body["usage"]["prompt_tokens"]
        items = items[size:]
    stats = engine.stats.snapshot()
    assert stats["requests"] == 3
    assert stats["by_status"] == {"200": 3}
    assert stats["items_requested"] == stats["items_answered"] == 11
    assert stats["prompt_tokens"] == usage
    assert stats["pack_sizes"] == {"3": 2, "5": 1}
    engine.reset_stats()
    assert engine.stats.snapshot()["requests"] == 0
