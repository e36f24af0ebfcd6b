"""The providers' batch-API edges: a line out is the synchronous body, a result line in
becomes a Completion or the error the retry policy expects."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types.messages import MessageBatchIndividualResponse

from llmbatch._exceptions import (
    AuthenticationError,
    BadRequest,
    BatchLineLost,
    ProviderError,
    RateLimited,
    ServerError,
)
from llmbatch._types import Completion, Request
from llmbatch.providers import ProviderConfig, create_provider
from llmbatch.providers.anthropic import messages_body, read_batch_result
from llmbatch.providers.base import batch_api
from llmbatch.providers.openai import chat_body, read_batch_line

REQUEST = Request(
    system="Label it.",
    user='Items (1):\nk0: "fine"',
    mode="tool",
    schema={"type": "object", "properties": {"k0": {"type": "string"}}, "required": ["k0"]},
    max_tokens=40,
    temperature=0.0,
    est_prompt_tokens=20,
)


def chat_completion(content: str = '{"k0": "ok"}') -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "sim-1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37},
    }


def test_batch_lines_carry_the_same_bodies_as_synchronous_requests() -> None:
    openai_provider = create_provider(
        "openai", ProviderConfig(model="m", base_url="http://x/v1", api_key="k")
    )
    openai_batches = batch_api(openai_provider)
    line = openai_batches.batch_line("p0", REQUEST)
    assert line == {
        "custom_id": "p0",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": chat_body(REQUEST, "m"),
    }
    claude = create_provider("anthropic", ProviderConfig(model="c", base_url="http://x", api_key="k"))
    claude_batches = batch_api(claude)
    # The same body, but for the cache's lifetime: a batch may reach a line long after the
    # batch that primed the cache ended, so its lines ask for an entry of an hour.
    assert claude_batches.batch_line("p1", REQUEST) == {
        "custom_id": "p1",
        "params": messages_body(REQUEST, "c", cache_ttl="1h"),
    }
    assert messages_body(REQUEST, "c", cache_ttl="1h")["system"][0]["cache_control"]["ttl"] == "1h"
    five = create_provider(
        "anthropic",
        ProviderConfig(model="c", base_url="http://x", api_key="k", extra={"cache_retention": "5m"}),
    )
    assert batch_api(five).batch_line("p1", REQUEST)["params"] == messages_body(REQUEST, "c", cache_ttl="5m")
    assert openai_provider.supports_batch and claude.supports_batch
    claude_limits, openai_limits = claude_batches.batch_limits, openai_batches.batch_limits
    assert (claude_limits.max_requests, claude_limits.max_bytes) == (100_000, 256_000_000)
    assert (openai_limits.max_requests, openai_limits.max_bytes) == (
        50_000,
        200_000_000,
    )


def test_an_openai_result_line_becomes_a_completion() -> None:
    custom_id, result = read_batch_line(
        {
            "id": "batch_req_1",
            "custom_id": "p3",
            "response": {"status_code": 200, "request_id": "r", "body": chat_completion()},
            "error": None,
        }
    )
    assert custom_id == "p3"
    assert isinstance(result, Completion)
    assert result.content == '{"k0": "ok"}' and result.usage.prompt_tokens == 30


@pytest.mark.parametrize(
    ("line", "error", "kind"),
    [
        ({"response": None, "error": {"code": "batch_expired", "message": "late"}}, BatchLineLost, "expired"),
        ({"response": None, "error": {"code": "batch_cancelled", "message": "x"}}, BatchLineLost, "canceled"),
        (
            {"response": {"status_code": 400, "body": {"error": {"message": "bad", "code": "invalid"}}}},
            BadRequest,
            "bad_request",
        ),
        (
            {"response": {"status_code": 500, "body": {"error": {"message": "oops"}}}},
            ServerError,
            "server_error",
        ),
        (
            {"response": {"status_code": 429, "body": {"error": {"message": "slow"}}}},
            RateLimited,
            "rate_limited",
        ),
        ({"response": {"status_code": 200, "body": {"choices": "nope"}}}, ServerError, "server_error"),
    ],
)
def test_an_openai_error_line_becomes_the_error_the_policy_expects(
    line: dict[str, Any], error: type[ProviderError], kind: str
) -> None:
    custom_id, result = read_batch_line({"id": "x", "custom_id": "p1", **line})
    assert custom_id == "p1"
    assert isinstance(result, error) and result.kind == kind


def anthropic_entry(result: dict[str, Any]) -> MessageBatchIndividualResponse:
    return MessageBatchIndividualResponse.model_validate({"custom_id": "p2", "result": result})


def test_an_anthropic_result_becomes_a_completion_or_an_error() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "c",
        "content": [{"type": "tool_use", "id": "t", "name": "answers", "input": {"k0": "ok"}}],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 4},
    }
    custom_id, done = read_batch_result(anthropic_entry({"type": "succeeded", "message": message}))
    assert custom_id == "p2" and isinstance(done, Completion) and done.content == '{"k0": "ok"}'

    def error_of(kind: str) -> ProviderError:
        error = {"type": "error", "error": {"type": kind, "message": "m"}}
        _, result = read_batch_result(anthropic_entry({"type": "errored", "error": error}))
        assert isinstance(result, ProviderError)
        return result

    assert isinstance(error_of("invalid_request_error"), BadRequest)
    assert isinstance(error_of("overloaded_error"), ServerError)
    assert isinstance(error_of("authentication_error"), AuthenticationError)
    for kind in ("expired", "canceled"):
        _, lost = read_batch_result(anthropic_entry({"type": kind}))
        assert isinstance(lost, BatchLineLost) and lost.kind == kind
