"""The simulator's batch APIs, called through the official OpenAI and Anthropic SDKs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest

from llmbatch.sim import SimConfig, SimServer

KEY = "sk-test"
SENTENCES = [f"Translate to Spanish: good morning number {i}" for i in range(30)]


def chat(text: str) -> dict[str, Any]:
    return {"model": "sim-1", "max_tokens": 60, "messages": [{"role": "user", "content": text}]}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def openai_lines(texts: list[str]) -> list[dict[str, Any]]:
    return [
        {"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions", "body": chat(text)}
        for i, text in enumerate(texts)
    ]


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[SimServer]:
    knobs = getattr(request, "param", {})
    async with SimServer(SimConfig(seed=4, **knobs)) as running:
        yield running


async def openai_batch(client: openai.AsyncOpenAI, lines: list[dict[str, Any]]) -> Any:
    upload = await client.files.create(file=("in.jsonl", jsonl(lines), "application/jsonl"), purpose="batch")
    batch = await client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    while batch.status in ("validating", "in_progress", "finalizing"):
        await asyncio.sleep(0.01)
        batch = await client.batches.retrieve(batch.id)
    return batch


async def file_lines(client: openai.AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    content = await client.files.content(file_id)
    return [json.loads(line) for line in content.text.splitlines()]


async def test_openai_batch_answers_every_line_like_the_chat_endpoint_in_another_order(
    server: SimServer,
) -> None:
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key=KEY, max_retries=0) as client:
        batch = await openai_batch(client, openai_lines(SENTENCES))
        output = await file_lines(client, batch.output_file_id)
        direct = await client.chat.completions.create(**chat(SENTENCES[3]))  # type: ignore[call-overload]

    assert batch.status == "completed" and batch.error_file_id is None
    assert batch.request_counts is not None and batch.request_counts.completed == 30
    ids = [line["custom_id"] for line in output]
    assert sorted(ids) == sorted(f"c{i}" for i in range(30)) and ids != [f"c{i}" for i in range(30)]
    by_id = {line["custom_id"]: line["response"] for line in output}
    assert by_id["c3"]["status_code"] == 200
    answer = by_id["c3"]["body"]["choices"][0]["message"]["content"]
    assert answer == direct.choices[0].message.content
    stats = server.stats()["batches"]
    assert stats["submitted_by_api"] == {"openai": 1} and stats["lines"] == 30


@pytest.mark.parametrize("server", [{"batch_failure_rate": 0.3, "batch_expire_rate": 0.3}], indirect=True)
async def test_openai_lost_lines_go_to_the_error_file_and_the_batch_expires(server: SimServer) -> None:
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key=KEY, max_retries=0) as client:
        batch = await openai_batch(client, openai_lines(SENTENCES))
        errors = await file_lines(client, batch.error_file_id)
        again = await openai_batch(client, openai_lines(SENTENCES))
        errors_again = await file_lines(client, again.error_file_id)

    assert batch.status == "expired"
    expired = [line for line in errors if line["error"] and line["error"]["code"] == "batch_expired"]
    failed = [line for line in errors if line["response"] and line["response"]["status_code"] == 500]
    assert expired and failed and len(expired) + len(failed) == len(errors)
    assert all(line["response"] is None for line in expired)
    assert batch.request_counts is not None
    assert batch.request_counts.failed == len(errors) == 30 - batch.request_counts.completed
    stats = server.stats()["batches"]
    assert stats["lines_expired"] >= len(expired) and stats["lines_failed"] >= len(failed)
    # The same lines again draw again: a resubmitted line can succeed.
    assert {line["custom_id"] for line in errors} != {line["custom_id"] for line in errors_again}


async def test_an_openai_file_with_repeated_custom_ids_fails_validation(server: SimServer) -> None:
    lines = openai_lines(SENTENCES[:3])
    lines[2]["custom_id"] = "c0"
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key=KEY, max_retries=0) as client:
        batch = await openai_batch(client, lines)
    assert batch.status == "failed" and batch.output_file_id is None
    assert batch.errors is not None and batch.errors.data
    assert batch.errors.data[0].code == "duplicate_custom_id"
    assert server.stats()["requests"] == 0  # nothing ran


async def test_anthropic_batch_results_through_the_sdk(server: SimServer) -> None:
    root = server.base_url.removesuffix("/v1")
    requests: Any = [{"custom_id": f"c{i}", "params": chat(text)} for i, text in enumerate(SENTENCES)]
    async with anthropic.AsyncAnthropic(base_url=root, api_key=KEY, max_retries=0) as client:
        batch = await client.messages.batches.create(requests=requests)
        assert batch.processing_status == "in_progress" and batch.results_url is None
        # The loop reads a new batch each time; mypy keeps the assert's narrowing into it.
        while batch.processing_status != "ended":  # type: ignore[comparison-overlap]
            await asyncio.sleep(0.01)
            batch = await client.messages.batches.retrieve(batch.id)
        results = [entry async for entry in await client.messages.batches.results(batch.id)]

    assert batch.request_counts.succeeded == 30
    assert sorted(r.custom_id for r in results) == sorted(f"c{i}" for i in range(30))
    assert [r.custom_id for r in results] != [f"c{i}" for i in range(30)]
    first = results[0].result
    assert first.type == "succeeded"
    assert first.message.content[0].type == "text" and first.message.content[0].text.startswith("Translate")


async def test_an_unknown_anthropic_batch_is_404_and_stats_reset(server: SimServer) -> None:
    root = server.base_url.removesuffix("/v1")
    async with anthropic.AsyncAnthropic(base_url=root, api_key=KEY, max_retries=0) as client:
        requests: Any = [{"custom_id": "a", "params": chat("hi")}]
        await client.messages.batches.create(requests=requests)
        with pytest.raises(anthropic.NotFoundError):
            await client.messages.batches.retrieve("msgbatch_nope")
    assert server.stats()["batches"]["submitted"] == 1
    server.engine.reset_stats()
    server.batches.reset_stats()
    assert server.stats()["batches"]["submitted"] == 0
