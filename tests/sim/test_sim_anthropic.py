"""The simulator's Anthropic Messages endpoint: shapes, prompt caching, rate limits, errors.

Bodies are written by hand here (not by llmbatch's provider), so the endpoint is
checked against Anthropic's documented shapes rather than against the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import anthropic
import pytest
from sim_testkit import example_items, load_task, make_engine

from _time import FakeClock
from llmbatch._gates.headers import parse_rate_limits
from llmbatch._pack import PACKERS
from llmbatch._pack.tokens import MESSAGE_OVERHEAD, count_tokens
from llmbatch._task import Task, canonical_json
from llmbatch._types import Item, Request
from llmbatch.sim import SimConfig, SimEngine, SimServer, oracle_answer
from llmbatch.sim._anthropic import AnthropicMessages, rfc3339


def open_schema(request: Request) -> dict[str, Any]:
    """The pack schema without per-pack keys: the form llmbatch sends to keep the prefix cacheable."""
    assert request.schema is not None
    return {
        "type": "object",
        "additionalProperties": {"$ref": "#/$defs/answer"},
        "$defs": request.schema["$defs"],
    }


def anthropic_body(request: Request, *, cache: bool = True, open_tool: bool = True) -> dict[str, Any]:
    system: dict[str, Any] = {"type": "text", "text": request.system}
    if cache:
        system["cache_control"] = {"type": "ephemeral"}
    body: dict[str, Any] = {
        "model": "claude-sim",
        "max_tokens": request.max_tokens,
        "system": [system],
        "messages": [{"role": "user", "content": request.user}],
    }
    if request.mode == "tool":
        schema = open_schema(request) if open_tool else dict(request.schema or {})
        body["tools"] = [{"name": "answers", "description": "Record answers.", "input_schema": schema}]
        body["tool_choice"] = {"type": "tool", "name": "answers"}
    return body


def pack(fmt: str, start: int = 0, size: int = 5) -> tuple[Task, list[Item], Request]:
    task = load_task("sentiment")
    items = example_items("sentiment", task)[start : start + size]
    return task, items, PACKERS[fmt].render(task, items)


def expected(task: Task, request: Request, items: Sequence[Item]) -> dict[str, Any]:
    keys = PACKERS["tools"].keys(items)
    return {
        key: oracle_answer(task.item_schema, request.system, item.text)
        for key, item in zip(keys, items, strict=True)
    }


def prompt_tokens(body: dict[str, Any]) -> tuple[int, int]:
    """(all input tokens, the cacheable prefix) as the endpoint should count them."""
    tools = sum(count_tokens(canonical_json(tool["input_schema"])) for tool in body.get("tools", []))
    system = count_tokens(body["system"][0]["text"]) + MESSAGE_OVERHEAD
    user = count_tokens(body["messages"][0]["content"]) + MESSAGE_OVERHEAD
    return tools + system + user, tools + system


@pytest.mark.parametrize("open_tool", [True, False], ids=["open-schema", "pack-schema"])
async def test_forced_tool_answers_every_item_as_the_oracle(open_tool: bool) -> None:
    task, items, request = pack("tools")
    response = await AnthropicMessages(make_engine()).create(anthropic_body(request, open_tool=open_tool))

    assert response.status == 200
    body = response.body
    assert body["type"] == "message" and body["role"] == "assistant" and body["model"] == "claude-sim"
    assert body["id"].startswith("msg_") and response.headers["request-id"].startswith("req_")
    assert body["stop_reason"] == "tool_use"
    [block] = body["content"]
    assert block["type"] == "tool_use" and block["name"] == "answers" and block["id"].startswith("toolu_")
    assert block["input"] == expected(task, request, items)
    assert list(block["input"]) == PACKERS["tools"].keys(items)


async def test_numbered_pack_is_answered_in_a_text_block() -> None:
    _, items, request = pack("numbered")
    response = await AnthropicMessages(make_engine()).create(anthropic_body(request))

    assert response.status == 200
    [block] = response.body["content"]
    assert block["type"] == "text"
    assert [line.split(":")[0] for line in block["text"].splitlines()] == [item.key for item in items]
    assert response.body["stop_reason"] == "end_turn"


async def test_a_cut_answer_stops_at_max_tokens() -> None:
    _, _, request = pack("tools")
    body = {**anthropic_body(request), "max_tokens": 10}
    response = await AnthropicMessages(make_engine()).create(body)

    assert response.body["stop_reason"] == "max_tokens"
    assert response.body["content"][0]["type"] == "tool_use"
    assert response.body["usage"]["output_tokens"] <= 10


async def test_the_second_request_with_the_same_prefix_reads_the_cache() -> None:
    endpoint = AnthropicMessages(make_engine())
    first_body = anthropic_body(pack("tools", 0)[2])
    second_body = anthropic_body(pack("tools", 5)[2])
    assert first_body["tools"] == second_body["tools"], "the open schema keeps the prefix identical"
    total, prefix = prompt_tokens(first_body)

    first = (await endpoint.create(first_body)).body["usage"]
    second = (await endpoint.create(second_body)).body["usage"]

    assert first["cache_creation_input_tokens"] == prefix and first["cache_read_input_tokens"] == 0
    assert first["input_tokens"] == total - prefix
    assert second["cache_read_input_tokens"] == prefix and second["cache_creation_input_tokens"] == 0
    assert second["input_tokens"] == prompt_tokens(second_body)[0] - prefix


async def test_per_pack_tool_schemas_never_hit_the_cache() -> None:
    # Anthropic caches tools before system: a tool schema naming each pack's keys
    # changes the prefix with every pack size.
    endpoint = AnthropicMessages(make_engine())
    for size in (3, 4, 5):
        body = anthropic_body(pack("tools", size=size)[2], open_tool=False)
        usage = (await endpoint.create(body)).body["usage"]
        assert usage["cache_read_input_tokens"] == 0
        assert usage["cache_creation_input_tokens"] > 0


async def test_without_a_breakpoint_nothing_is_cached() -> None:
    endpoint = AnthropicMessages(make_engine())
    for start in (0, 5):
        body = anthropic_body(pack("tools", start)[2], cache=False)
        usage = (await endpoint.create(body)).body["usage"]
        assert usage["cache_read_input_tokens"] == usage["cache_creation_input_tokens"] == 0
        assert usage["input_tokens"] == prompt_tokens(body)[0]


async def test_a_cache_entry_expires_five_minutes_after_its_last_use() -> None:
    clock = FakeClock(1000.0)
    endpoint = AnthropicMessages(make_engine(), clock=clock)
    body = anthropic_body(pack("tools")[2])
    await endpoint.create(body)
    clock.advance(299)
    assert (await endpoint.create(body)).body["usage"]["cache_read_input_tokens"] > 0
    clock.advance(299)  # refreshed by the read
    assert (await endpoint.create(body)).body["usage"]["cache_read_input_tokens"] > 0
    clock.advance(301)
    usage = (await endpoint.create(body)).body["usage"]
    assert usage["cache_read_input_tokens"] == 0 and usage["cache_creation_input_tokens"] > 0


async def test_requests_sent_together_all_write_the_cache() -> None:
    # The entry exists only once a response is done: a fan-out without a warm-up pays N writes.
    gate = asyncio.Event()

    async def held(seconds: float) -> None:
        await gate.wait()

    endpoint = AnthropicMessages(SimEngine(SimConfig(), sleep=held))
    bodies = [anthropic_body(pack("tools", start)[2]) for start in (0, 5, 10)]
    together = asyncio.gather(*(endpoint.create(body) for body in bodies))
    await asyncio.sleep(0.01)
    gate.set()
    usages = [response.body["usage"] for response in await together]
    assert all(u["cache_creation_input_tokens"] > 0 and u["cache_read_input_tokens"] == 0 for u in usages)
    after = (await endpoint.create(anthropic_body(pack("tools", 15)[2]))).body["usage"]
    assert after["cache_read_input_tokens"] > 0


async def test_rate_limit_headers_count_input_and_output_apart() -> None:
    clock = FakeClock(1000.0)
    config = SimConfig(rate_limit_rpm=100, rate_limit_tpm=10_000)
    endpoint = AnthropicMessages(make_engine(config), clock=clock, wall_clock=lambda: 1_800_000_000.0)
    first_body = anthropic_body(pack("tools", 0)[2])
    second_body = anthropic_body(pack("tools", 5)[2])
    total, prefix = prompt_tokens(first_body)

    first = await endpoint.create(first_body)
    second = await endpoint.create(second_body)

    h1, h2 = first.headers, second.headers
    assert h1["anthropic-ratelimit-requests-limit"] == "100"
    assert h1["anthropic-ratelimit-requests-remaining"] == "99"
    assert h2["anthropic-ratelimit-requests-remaining"] == "98"
    # The write counts as input; the read does not.
    assert int(h1["anthropic-ratelimit-input-tokens-remaining"]) == 10_000 - total
    uncached = prompt_tokens(second_body)[0] - prefix
    assert int(h2["anthropic-ratelimit-input-tokens-remaining"]) == 10_000 - total - uncached
    # max_tokens is charged on admission, and what was not written is given back after.
    output = first.body["usage"]["output_tokens"]
    assert int(h1["anthropic-ratelimit-output-tokens-remaining"]) == 10_000 - first_body["max_tokens"]
    assert (
        int(h2["anthropic-ratelimit-output-tokens-remaining"]) == 10_000 - output - second_body["max_tokens"]
    )
    # Resets are RFC 3339 times, which the client's header parser reads as seconds from now.
    assert h1["anthropic-ratelimit-requests-reset"] == rfc3339(1_800_000_000.0 + 0.6)
    buckets = parse_rate_limits(h2, 1_800_000_000.0)
    assert set(buckets) == {"requests", "input_tokens", "output_tokens"}
    assert buckets["requests"].reset == 2.0  # 1.2 s to refill two requests, in whole seconds


async def test_a_refused_request_is_a_rate_limit_error_with_retry_after() -> None:
    clock = FakeClock(1000.0)
    engine = make_engine(SimConfig(rate_limit_rpm=2))
    endpoint = AnthropicMessages(engine, clock=clock)
    body = anthropic_body(pack("tools")[2])
    for _ in range(2):
        assert (await endpoint.create(body)).status == 200
    refused = await endpoint.create(body)

    assert refused.status == 429
    message = "This request would exceed the rate limit for requests per minute. Please retry later."
    assert refused.body == {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
    assert refused.headers["retry-after"] == "30"
    assert refused.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert engine.stats.rate_limited == 1
    clock.advance(30)
    assert (await endpoint.create(body)).status == 200


async def test_a_request_larger_than_a_minutes_allowance_is_a_bad_request() -> None:
    endpoint = AnthropicMessages(make_engine(SimConfig(rate_limit_tpm=100)))
    response = await endpoint.create(anthropic_body(pack("tools")[2]))
    assert response.status == 400
    assert response.body["error"]["type"] == "invalid_request_error"


async def test_spend_cap_is_a_429_without_retry_after() -> None:
    endpoint = AnthropicMessages(make_engine(SimConfig(quota_exhausted=True)))
    response = await endpoint.create(anthropic_body(pack("tools")[2]))
    assert response.status == 429
    assert response.body["error"]["type"] == "rate_limit_error"
    assert "retry-after" not in response.headers


async def test_injected_errors_speak_anthropic_and_overload_is_529() -> None:
    seen: dict[int, str] = {}
    for seed in range(40):
        endpoint = AnthropicMessages(make_engine(SimConfig(seed=seed, error_rate=1.0)))
        response = await endpoint.create(anthropic_body(pack("tools")[2]))
        assert response.body["type"] == "error"
        seen[response.status] = response.body["error"]["type"]
    assert seen == {500: "api_error", 502: "api_error", 529: "overloaded_error"}


@pytest.mark.parametrize(
    "body",
    [
        None,
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        {"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]},
        {"model": "m", "max_tokens": 5, "messages": []},
        {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "hi"}]},
        {"model": "m", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        {"model": "m", "max_tokens": 5, "system": 3, "messages": [{"role": "user", "content": "hi"}]},
        {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
         "tool_choice": {"type": "tool", "name": "nope"}},
    ],
    ids=["not-object", "no-max-tokens", "zero-max-tokens", "no-messages", "bad-role", "stream",
         "bad-system", "unknown-tool"],
)  # fmt: skip
async def test_malformed_bodies_are_invalid_request_errors(body: Any) -> None:
    engine = make_engine()
    response = await AnthropicMessages(engine).create(body)
    assert response.status == 400
    assert response.body["type"] == "error"
    assert response.body["error"]["type"] == "invalid_request_error"
    assert engine.stats.requests == 0


async def test_official_sdk_over_http() -> None:
    """The official SDK reads the endpoint's answers, headers and errors as Anthropic's own."""
    task, items, request = pack("tools")
    async with SimServer(SimConfig(seed=1, rate_limit_rpm=2)) as server:
        root = server.base_url.removesuffix("/v1")
        client = anthropic.AsyncAnthropic(base_url=root, api_key="sk-ant-test", max_retries=0, timeout=10)
        try:
            raw = await client.messages.with_raw_response.create(**anthropic_body(request))
            message = await raw.parse()
            await client.messages.create(**anthropic_body(request))
            with pytest.raises(anthropic.RateLimitError) as refused:
                await client.messages.create(**anthropic_body(request))
        finally:
            await client.close()
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert isinstance(block, anthropic.types.ToolUseBlock)
    assert block.input == expected(task, request, items)
    assert message.usage.cache_creation_input_tokens and not message.usage.cache_read_input_tokens
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert refused.value.type == "rate_limit_error"
    assert int(refused.value.response.headers["retry-after"]) >= 1


async def injected_status(seed: int) -> int:
    endpoint = AnthropicMessages(make_engine(SimConfig(seed=seed, error_rate=1.0)))
    return (await endpoint.create(anthropic_body(pack("tools")[2]))).status


async def test_overloaded_over_http_is_the_sdks_overloaded_error() -> None:
    seed = 0
    while await injected_status(seed) != 529:
        seed += 1
    async with SimServer(SimConfig(seed=seed, error_rate=1.0)) as server:
        client = anthropic.AsyncAnthropic(
            base_url=server.base_url.removesuffix("/v1"), api_key="sk-ant-test", max_retries=0
        )
        try:
            with pytest.raises(anthropic.OverloadedError) as caught:
                await client.messages.create(**anthropic_body(pack("tools")[2]))
        finally:
            await client.close()
    assert caught.value.type == "overloaded_error"
