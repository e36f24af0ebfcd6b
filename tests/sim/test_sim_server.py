"""The simulator over real HTTP on 127.0.0.1, driven by the official openai SDK and aiohttp."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from sim_testkit import example_items, load_task

from llmbatch._pack import PACKERS
from llmbatch._types import Completion, Usage
from llmbatch.sim import SimConfig, SimServer, oracle_answer, run_in_thread


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(seed=1)) as running:
        yield running


@pytest.fixture
async def client(server: SimServer) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10)
    yield sdk
    await sdk.close()


def check_outcomes(fmt: str, content: str, finish: str, system: str) -> None:
    task = load_task("sentiment")
    items = example_items("sentiment", task)[:6]
    completion = Completion(content, finish, Usage(), 0.0)
    for item, outcome in zip(items, PACKERS[fmt].parse(task, items, completion).values(), strict=True):
        assert outcome.status == "ok"
        assert outcome.answer == oracle_answer(task.item_schema, system, item.text)


def sentiment_pack(fmt: str) -> Any:
    task = load_task("sentiment")
    return PACKERS[fmt].render(task, example_items("sentiment", task)[:6])


async def test_sdk_json_pack(client: openai.AsyncOpenAI) -> None:
    request = sentiment_pack("json")
    completion = await client.chat.completions.create(
        model="sim-1",
        messages=[{"role": "system", "content": request.system}, {"role": "user", "content": request.user}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answers", "schema": dict(request.schema), "strict": True},
        },
        max_tokens=request.max_tokens,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == request.est_prompt_tokens
    assert choice.message.content is not None
    check_outcomes("json", choice.message.content, choice.finish_reason, request.system)


async def test_sdk_tools_pack(client: openai.AsyncOpenAI) -> None:
    request = sentiment_pack("tools")
    completion = await client.chat.completions.create(
        model="sim-1",
        messages=[{"role": "system", "content": request.system}, {"role": "user", "content": request.user}],
        tools=[
            {
                "type": "function",
                "function": {"name": "answers", "parameters": dict(request.schema), "strict": True},
            }
        ],
        tool_choice={"type": "function", "function": {"name": "answers"}},
        parallel_tool_calls=False,
        max_completion_tokens=request.max_tokens,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "answers"  # type: ignore[union-attr]
    check_outcomes("tools", call.function.arguments, "stop", request.system)  # type: ignore[union-attr]


async def test_sdk_plain_prompt(client: openai.AsyncOpenAI, server: SimServer) -> None:
    completion = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Translate the text to Spanish."},
            {"role": "user", "content": "Good morning, my friend."},
        ],
    )
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content == "Bueno mañana, mi amigo."
    assert server.stats()["by_status"] == {"200": 1}


async def test_sdk_lists_models(client: openai.AsyncOpenAI) -> None:
    models = [model.id async for model in client.models.list()]
    assert models == ["sim-1"]


async def test_raw_http_post_and_stats(server: SimServer) -> None:
    root = server.base_url.removesuffix("/v1")
    body = {"model": "sim-1", "messages": [{"role": "user", "content": "one two three"}]}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.base_url}/chat/completions", json=body) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("application/json")
            payload = await response.json()
        assert payload["choices"][0]["message"]["content"] == "three two one"
        async with session.post(f"{server.base_url}/chat/completions", data=b"{not json") as response:
            assert response.status == 400
            assert (await response.json())["error"]["type"] == "invalid_request_error"
        async with session.get(f"{root}/sim/stats") as response:
            stats = await response.json()
        assert stats["requests"] == 2
        assert stats["by_status"] == {"200": 1, "400": 1}
        assert stats["prompt_tokens"] == payload["usage"]["prompt_tokens"]
        assert stats["completion_tokens"] == payload["usage"]["completion_tokens"]
        assert stats["items_requested"] == stats["items_answered"] == 1
        async with session.post(f"{root}/sim/reset") as response:
            assert response.status == 200
        async with session.get(f"{root}/sim/stats") as response:
            assert (await response.json())["requests"] == 0


async def test_rate_limit_over_http() -> None:
    async with SimServer(SimConfig(rate_limit_rpm=1)) as server:
        sdk = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        messages: Any = [{"role": "user", "content": "hello"}]
        try:
            first = await sdk.chat.completions.with_raw_response.create(model="sim-1", messages=messages)
            assert first.headers["x-ratelimit-remaining-requests"] == "0"
            with pytest.raises(openai.RateLimitError) as caught:
                await sdk.chat.completions.create(model="sim-1", messages=messages)
        finally:
            await sdk.close()
        assert caught.value.code == "rate_limit_exceeded"
        assert float(caught.value.response.headers["retry-after"]) > 0
        assert server.stats()["rate_limited"] == 1


async def test_quota_exhausted_over_http() -> None:
    async with SimServer(SimConfig(quota_exhausted=True)) as server:
        sdk = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        try:
            with pytest.raises(openai.RateLimitError) as caught:
                await sdk.chat.completions.create(model="sim-1", messages=[{"role": "user", "content": "x"}])
        finally:
            await sdk.close()
        assert caught.value.code == "insufficient_quota"


async def test_hung_request_times_out_and_the_handler_is_cancelled() -> None:
    async with SimServer(SimConfig(timeout_rate=1.0, hang_seconds=30)) as server:
        sdk = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=0.3)
        try:
            with pytest.raises(openai.APITimeoutError):
                await sdk.chat.completions.create(model="sim-1", messages=[{"role": "user", "content": "x"}])
        finally:
            await sdk.close()
        for _ in range(100):
            if server.stats()["in_flight"] == 0:
                break
            await asyncio.sleep(0.02)
        assert server.stats()["in_flight"] == 0
        assert server.stats()["faults"] == {"timeout": 1}


async def test_concurrent_requests_are_counted(server: SimServer, client: openai.AsyncOpenAI) -> None:
    await asyncio.gather(
        *(
            client.chat.completions.create(model="sim-1", messages=[{"role": "user", "content": f"t {i}"}])
            for i in range(8)
        )
    )
    stats = server.stats()
    assert stats["requests"] == 8 and stats["max_concurrent"] >= 1


def test_run_in_thread_from_sync_code() -> None:
    with run_in_thread(SimConfig(model="sim-sync")) as server:
        sdk = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10)
        try:
            completion = sdk.chat.completions.create(
                model="sim-sync", messages=[{"role": "user", "content": "a b"}]
            )
        finally:
            sdk.close()
        assert completion.choices[0].message.content == "b a"
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=10) as response:
            assert json.load(response)["data"][0]["id"] == "sim-sync"
        assert server.stats()["requests"] == 1
        base_url = server.base_url
    with pytest.raises(OSError):  # stopped: nothing listens any more
        urllib.request.urlopen(f"{base_url}/models", timeout=2)
    assert server.stats()["requests"] == 1  # the final counters stay readable


def test_run_in_thread_reports_a_port_in_use() -> None:
    with run_in_thread() as first:
        port = int(first.base_url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(OSError), run_in_thread(port=port):
            pass
