"""The Anthropic provider over real HTTP on 127.0.0.1: the simulator's Messages
endpoint for whole jobs and prompt caching, a scripted aiohttp server for the
exact request and the error mapping."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from _e2e_helpers import (
    EXAMPLES,
    assert_rows_match_oracle,
    invoke,
    load_task,
    metrics_rows,
    read_jsonl,
    table_numbers,
)
from llmbatch._exceptions import (
    AuthenticationError,
    BadRequest,
    ConnectionFailed,
    FatalError,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RequestTimeout,
    ServerError,
    UsageError,
)
from llmbatch._pack import PACKERS
from llmbatch._pack.tokens import MESSAGE_OVERHEAD, count_tokens
from llmbatch._task import canonical_json
from llmbatch._types import Item, Request
from llmbatch.providers import ProviderConfig, create_provider
from llmbatch.providers.anthropic import AnthropicProvider, messages_body, tool_schema
from llmbatch.sim import SimConfig, SimServer
from llmbatch.sim.server import ThreadedServer

KEY = "sk-ant-test-5ecret-key-do-not-leak"


def sentiment_request(start: int = 0, size: int = 5, pack: str = "tools") -> tuple[list[Item], Request]:
    task = load_task("sentiment")
    records = read_jsonl(EXAMPLES / "reviews.jsonl")[start : start + size]
    items = [Item(start + i, r["id"], task.render_input(r)) for i, r in enumerate(records)]
    return items, PACKERS[pack].render(task, items)


def provider(base_url: str, **config: Any) -> AnthropicProvider:
    made = create_provider("anthropic", ProviderConfig(base_url=base_url, api_key=KEY, **config))
    assert isinstance(made, AnthropicProvider)
    return made


# -- whole jobs against the simulator -------------------------------------------------------


def test_a_job_through_the_cli_gets_the_oracles_answers_and_reads_the_cache(
    tmp_path: Path, sim_thread: Callable[..., ThreadedServer]
) -> None:
    sim = sim_thread(seed=3)
    out = tmp_path / "out.jsonl"
    root = sim.base_url.removesuffix("/v1")
    args = ["run", str(EXAMPLES / "reviews.jsonl"), "--task", str(EXAMPLES / "sentiment.toml")]
    args += ["--out", str(out), "--provider", "anthropic", "--base-url", root, "--api-key", KEY]
    args += ["--no-cache", "--job-dir", str(tmp_path / "job"), "--batch-size", "5", "--concurrency", "2"]
    result = invoke(args)

    assert result.exit_code == 0, result.output
    records = read_jsonl(EXAMPLES / "reviews.jsonl")
    assert_rows_match_oracle(load_task("sentiment"), "tools", records, read_jsonl(out))
    tokens_in, _, cached = table_numbers(metrics_rows(result.stdout), "tokens in / out / cached")
    assert 0 < cached < tokens_in
    stats = sim.stats()
    assert stats["by_status"] == {"200": stats["requests"]}
    assert KEY not in result.output


async def test_cached_tokens_are_reported_after_the_first_request() -> None:
    _, request = sentiment_request(5)
    async with SimServer(SimConfig(seed=1)) as server, provider(server.base_url) as anthropic:
        first = await anthropic.complete(sentiment_request(0)[1])
        second = await anthropic.complete(request)

    assert first.usage.cached_tokens == 0
    assert request.schema is not None
    prefix = count_tokens(canonical_json(tool_schema(request.schema))) + count_tokens(request.system)
    prefix += MESSAGE_OVERHEAD
    assert second.usage.cached_tokens == prefix
    # prompt_tokens is the whole prompt, cached part included, as for every provider.
    assert second.usage.prompt_tokens == prefix + count_tokens(request.user) + MESSAGE_OVERHEAD
    assert first.finish_reason == second.finish_reason == "stop"
    assert first.model == "claude-haiku-4-5"


async def test_answers_parse_into_one_outcome_per_item() -> None:
    task = load_task("sentiment")
    for pack in ("tools", "numbered"):
        items, request = sentiment_request(pack=pack)
        async with SimServer(SimConfig(seed=1)) as server, provider(server.base_url) as anthropic:
            completion = await anthropic.complete(request)
        outcomes = PACKERS[pack].parse(task, items, completion)
        assert [o.status for o in outcomes.values()] == ["ok"] * len(items), pack


async def test_a_cut_answer_is_finish_reason_length() -> None:
    _, request = sentiment_request()
    async with (
        SimServer(SimConfig(seed=1, truncate_rate=1.0)) as server,
        provider(server.base_url) as anthropic,
    ):
        completion = await anthropic.complete(request)
    assert completion.finish_reason == "length"


async def test_rate_limit_headers_are_kept() -> None:
    async with (
        SimServer(SimConfig(rate_limit_rpm=60, rate_limit_tpm=100_000)) as server,
        provider(server.base_url) as anthropic,
    ):
        completion = await anthropic.complete(sentiment_request()[1])
    assert completion.headers["anthropic-ratelimit-requests-remaining"] == "59"
    assert {name.rsplit("-", 1)[0] for name in completion.headers} == {
        "anthropic-ratelimit-requests",
        "anthropic-ratelimit-input-tokens",
        "anthropic-ratelimit-output-tokens",
    }


# -- the request, seen by a scripted server ----------------------------------------------------


@dataclass
class Script:
    """What the scripted server answers next, and what it was sent."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    seen: list[tuple[dict[str, str], Any]] = field(default_factory=list)


def message(content: list[dict[str, Any]], stop: str = "tool_use", **usage: int) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
    }


def error(kind: str, text: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": text}}


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[str, Script]]:
    script = Script()

    async def handle(request: web.Request) -> web.Response:
        script.seen.append(({k.lower(): v for k, v in request.headers.items()}, await request.json()))
        if script.delay:
            await asyncio.sleep(script.delay)
        return web.json_response(script.body, status=script.status, headers=script.headers)

    app = web.Application()
    app.router.add_post("/v1/messages", handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", script
    finally:
        await runner.cleanup()


async def test_the_request_puts_a_cacheable_prefix_first(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.body = message([{"type": "tool_use", "id": "toolu_1", "name": "answers", "input": {"k0": 1}}])
    async with provider(url + "/v1/", model="claude-test") as anthropic:
        completion = await anthropic.complete(sentiment_request(0)[1])
        await anthropic.complete(sentiment_request(5)[1])

    (headers, first), (_, second) = script.seen
    # x-api-key, or a bearer token as SDK 2.x sends it
    assert KEY in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))
    assert "anthropic-version" in headers
    _, request = sentiment_request(0)
    assert first["model"] == "claude-test" and first["max_tokens"] == request.max_tokens
    assert first["system"] == [
        {"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}
    ]
    assert first["messages"] == [{"role": "user", "content": request.user}]
    assert first["tool_choice"] == {"type": "tool", "name": "answers"}
    [tool] = first["tools"]
    assert tool["name"] == "answers" and tool["description"]
    assert tool["input_schema"]["additionalProperties"] == {"$ref": "#/$defs/answer"}
    assert "required" not in tool["input_schema"]
    # Tools come before system in Anthropic's cache prefix: both must be byte-identical.
    assert json.dumps(first["tools"]) == json.dumps(second["tools"])
    assert first["system"] == second["system"] and first["messages"] != second["messages"]
    # The sentiment task sets no temperature, so none is sent (Claude samples at its default).
    assert "temperature" not in first and "stream" not in first
    assert completion.content == '{"k0": 1}'


async def test_text_packs_send_no_tools_and_read_text(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.body = message([{"type": "text", "text": "k0: "}, {"type": "text", "text": "1"}], stop="end_turn")
    async with provider(url) as anthropic:
        completion = await anthropic.complete(sentiment_request(pack="numbered")[1])
    body = script.seen[0][1]
    assert "tools" not in body and "tool_choice" not in body
    assert completion.content == "k0: 1" and completion.finish_reason == "stop"


@pytest.mark.parametrize(
    ("stop", "finish"),
    [("end_turn", "stop"), ("tool_use", "stop"), ("max_tokens", "length"),
     ("model_context_window_exceeded", "length"), ("refusal", "refusal")],
)  # fmt: skip
async def test_stop_reasons(scripted: tuple[str, Script], stop: str, finish: str) -> None:
    url, script = scripted
    script.body = message([{"type": "text", "text": "x"}], stop=stop)
    async with provider(url) as anthropic:
        completion = await anthropic.complete(sentiment_request()[1])
    assert completion.finish_reason == finish


async def test_usage_adds_cached_input_to_the_prompt(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.body = message(
        [{"type": "text", "text": "x"}], cache_read_input_tokens=300, cache_creation_input_tokens=40
    )
    async with provider(url) as anthropic:
        completion = await anthropic.complete(sentiment_request()[1])
    assert completion.usage.prompt_tokens == 10 + 300 + 40
    assert completion.usage.cached_tokens == 300
    assert completion.usage.completion_tokens == 5


# -- errors --------------------------------------------------------------------------------------

LIMITS = {
    "anthropic-ratelimit-requests-remaining": "0",
    "anthropic-ratelimit-requests-reset": "2030-01-01T00:00:00Z",
}

ERRORS = [
    (429, {"retry-after": "7", **LIMITS}, "rate_limit_error", RateLimited),
    (429, LIMITS, "rate_limit_error", QuotaExhausted),
    (402, {}, "billing_error", QuotaExhausted),
    (529, {}, "overloaded_error", ServerError),
    (500, {}, "api_error", ServerError),
    (503, {}, "api_error", ServerError),
    (504, {}, "timeout_error", ServerError),
    (401, {}, "authentication_error", AuthenticationError),
    (403, {}, "permission_error", AuthenticationError),
    (404, {}, "not_found_error", FatalError),
    (400, {}, "invalid_request_error", BadRequest),
    (413, {}, "request_too_large", BadRequest),
]


@pytest.mark.parametrize(("status", "headers", "kind", "expected"), ERRORS,
                         ids=[f"{s}-{e.__name__}" for s, _, _, e in ERRORS])  # fmt: skip
async def test_errors_map_into_the_tree_without_the_key(
    scripted: tuple[str, Script], status: int, headers: dict[str, str], kind: str, expected: type[Exception]
) -> None:
    url, script = scripted
    script.status, script.headers = status, headers
    # Servers echo credentials in messages more often than they should.
    script.body = error(kind, f"something about x-api-key {KEY}")
    async with provider(url) as anthropic:
        with pytest.raises(ProviderError) as caught:
            await anthropic.complete(sentiment_request()[1])

    exc = caught.value
    assert type(exc) is expected
    assert exc.status == status
    assert KEY not in str(exc) and KEY not in repr(exc.args)
    assert f"HTTP {status} {kind}" in str(exc)
    if isinstance(exc, RateLimited):
        assert exc.retry_after == 7.0
    if status == 429:
        assert exc.headers["anthropic-ratelimit-requests-remaining"] == "0"
    if isinstance(exc, AuthenticationError):
        assert "ANTHROPIC_API_KEY" in str(exc)


async def test_a_slow_answer_is_a_timeout(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.delay, script.body = 5.0, message([])
    async with provider(url, timeout=0.2) as anthropic:
        with pytest.raises(RequestTimeout):
            await anthropic.complete(sentiment_request()[1])


async def test_a_closed_port_is_a_connection_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with provider(f"http://127.0.0.1:{port}") as anthropic:
        with pytest.raises(ConnectionFailed) as caught:
            await anthropic.complete(sentiment_request()[1])
    assert KEY not in str(caught.value)


# -- configuration ------------------------------------------------------------------------------


def test_capabilities() -> None:
    anthropic = provider("http://127.0.0.1:1")
    assert anthropic.default_pack == "tools"
    can = anthropic.capabilities
    assert can.context_tokens == 200_000
    assert can.refunds_unused_output and can.primes_batch_cache
    # The default model's minimum cacheable prefix is known (Haiku 4.5: 4,096 tokens): the runner
    # warms the cache up only for a prefix that reaches it, instead of always.
    assert (can.warm_up_first, can.cache_min_prefix) == (False, 4096)
    assert not can.json_schema


def test_endpoint_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    assert provider("http://127.0.0.1:9/v1").endpoint == "anthropic:http://127.0.0.1:9"
    assert provider("http://127.0.0.1:9/").base_url == "http://127.0.0.1:9"
    hosted = create_provider("anthropic", ProviderConfig(api_key=KEY))
    assert hosted.endpoint == "anthropic:default" and KEY not in hosted.endpoint


def test_a_missing_key_says_where_to_put_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with pytest.raises(UsageError, match="ANTHROPIC_API_KEY"):
        create_provider("anthropic", ProviderConfig())
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    assert isinstance(create_provider("anthropic", ProviderConfig()), AnthropicProvider)


def test_json_schema_packs_are_refused() -> None:
    _, request = sentiment_request(pack="json")
    with pytest.raises(UsageError, match="--pack tools"):
        messages_body(request, "claude-test")
