"""Gemini's native API through the ``google-genai`` SDK, against the simulator's emulation of it:
requests and answers in Google's shapes, its errors, and Batch Mode end to end (uploaded file,
batch job, responses file), killed mid-poll and re-attached."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.genai")

from google.genai import errors

from _e2e_helpers import load_task, review_records
from llmbatch._exceptions import (
    AuthenticationError,
    BadRequest,
    LLMBatchError,
    RateLimited,
    ServerError,
    UnknownProviderError,
    UsageError,
)
from llmbatch._pack import PACKERS
from llmbatch._types import Item
from llmbatch.providers import Provider, ProviderConfig, create_provider
from llmbatch.providers.gemini import (
    inline_refs,
    map_gemini_errors,
    parse_generate_response,
    rest_request,
)
from llmbatch.sim.server import ThreadedServer
from test_batch import (
    FAULTS,
    assert_all_match_oracle,
    job_store,
    kill_and_resume,
    simulator,
)


def gemini(server: ThreadedServer) -> Provider:
    return create_provider("gemini", ProviderConfig(model="sim-1", base_url=server.base_url, api_key="k"))


def pack_request(n: int = 3) -> Any:
    task = load_task("sentiment")
    items = [Item(i, str(i), f"review number {i}: great kettle") for i in range(n)]
    return task, items, PACKERS["json"].render(task, items)


def test_a_request_is_written_as_gemini_reads_it() -> None:
    _, _, request = pack_request()
    body = rest_request(request)
    assert body["systemInstruction"] == {"parts": [{"text": request.system}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": request.user}]}]
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["maxOutputTokens"] == request.max_tokens
    schema = config["responseJsonSchema"]
    assert "$defs" not in schema and "$ref" not in str(schema)  # written out in place
    assert schema["required"] == ["k1", "k2", "k3"]
    assert inline_refs({"a": [{"$ref": "#/$defs/x"}], "$defs": {"x": {"type": "integer"}}}) == {
        "a": [{"type": "integer"}]
    }


def test_answers_are_read_with_their_finish_and_usage() -> None:
    data = {
        "candidates": [
            {
                "content": {"parts": [{"text": "thinking...", "thought": True}, {"text": '{"k1": 1}'}]},
                "finishReason": "MAX_TOKENS",
            }
        ],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 7, "thoughtsTokenCount": 20},
        "modelVersion": "gemini-2.5-flash",
    }
    completion = parse_generate_response(data, 0.5)
    assert completion.content == '{"k1": 1}' and completion.finish_reason == "length"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        100,
        27,
    )  # thinking billed
    assert parse_generate_response({"candidates": [], "promptFeedback": {}}, 0.1).finish_reason == "refusal"
    with pytest.raises(ServerError, match="not a GenerateContentResponse"):
        parse_generate_response({"choices": []}, 0.1)


def test_google_errors_become_llmbatch_errors() -> None:
    wait = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}
    limited = {
        "error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED", "details": [wait]}
    }
    with pytest.raises(RateLimited) as caught, map_gemini_errors("k"):
        raise errors.ClientError(429, limited)
    assert caught.value.retry_after == 12.0
    denied = {"error": {"code": 401, "message": "API key not valid", "status": "UNAUTHENTICATED"}}
    with pytest.raises(AuthenticationError), map_gemini_errors("k"):
        raise errors.ClientError(401, denied)
    broken = {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}
    with pytest.raises(ServerError), map_gemini_errors("k"):
        raise errors.ServerError(500, broken)


def test_configuration_errors_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UsageError, match="GEMINI_API_KEY"):
        create_provider("gemini", ProviderConfig(model="gemini-2.5-flash"))
    _, _, request = pack_request()
    import dataclasses

    with pytest.raises(UsageError, match="not tools"):
        rest_request(dataclasses.replace(request, mode="tool"))


async def test_synchronous_requests_answer_like_the_oracle(tmp_path: Path) -> None:
    task = load_task("sentiment")
    records = review_records(60, seed=4)
    store = job_store(tmp_path, task, records)
    with simulator() as sim:
        provider = gemini(sim)
        from llmbatch._engine.runner import Runner
        from llmbatch._options import RunOptions

        async with provider:
            await Runner(task, provider, store, RunOptions(batch_size=10, shuffle=False)).run()
        stats = sim.stats()
    assert store.counts() == {"done": 60}
    assert_all_match_oracle(store, task, "json", records)
    assert stats["requests"] >= 6 and stats["by_status"] == {"200": stats["requests"]}
    store.close()


async def test_batch_mode_finishes_every_record_and_re_attaches_after_a_kill(tmp_path: Path) -> None:
    task = load_task("sentiment")
    records = review_records(1000, seed=10)
    store = job_store(tmp_path, task, records)
    with simulator(batch_delay=1.0, **FAULTS) as sim:
        provider = gemini(sim)
        async with provider:
            second, store, open_row = await kill_and_resume(task, provider, store, tmp_path / "job")
        assert open_row["provider_batch_id"].startswith("batches/")
        stats = sim.stats()["batches"]
    assert second.batches_reattached == 1
    assert store.counts() == {"done": 1000}
    assert_all_match_oracle(store, task, "json", records)
    assert stats["files_uploaded"] == stats["submitted"] == 1 + second.batches_submitted
    assert stats["lines"] == 50 + stats["lines_failed"] + stats["lines_expired"] + second.metrics.splits
    assert stats["lines_failed"] > 0 and stats["lines_expired"] > 0
    # Expired lines are told apart from failed ones, as the store's error kinds show.
    kinds = dict(
        store.db.execute("SELECT error_kind, COUNT(*) FROM requests WHERE status = 'error' GROUP BY 1")
    )
    assert kinds.get("expired", 0) == stats["lines_expired"]
    store.close()


# Every exception class google.genai.errors defines, and what it must become (as
# tests/providers/test_error_mapping.py does for the other SDKs).
SECRET = "AIza-test-5ecret-key"
GENAI: dict[str, type[Exception]] = {
    "APIError": ServerError,  # built with 503
    "ClientError": BadRequest,  # built with 400
    "ServerError": ServerError,
    "UnknownFunctionCallArgumentError": ServerError,  # a ValueError: an answer the SDK could not read
    "UnsupportedFunctionError": ServerError,
    "FunctionInvocationError": ServerError,
    "UnknownApiResponseError": ServerError,
    "ContinuationInterruptedError": UnknownProviderError,
}


def test_every_genai_exception_is_mapped_into_the_tree() -> None:
    exported = {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, Exception) and cls.__module__ == errors.__name__
    }
    assert set(exported) == set(GENAI), f"google-genai's errors changed: decide {set(exported) ^ set(GENAI)}"
    for name, cls in exported.items():
        if issubclass(cls, errors.APIError):
            code = 400 if cls is errors.ClientError else 503
            message = {"error": {"code": code, "message": f"failed for {SECRET}", "status": "X"}}
            raised: Exception = cls(code, message)
        else:
            raised = cls(f"failed for {SECRET}")
        with pytest.raises(LLMBatchError) as caught, map_gemini_errors(SECRET):
            raise raised
        assert type(caught.value) is GENAI[name], f"{name} became {type(caught.value).__name__}"
        assert SECRET not in str(caught.value)


def test_the_python_api_runs_on_gemini_and_refuses_what_it_would_ignore(tmp_path: Path) -> None:
    import llmbatch

    task = load_task("sentiment")
    records = review_records(30, seed=12)
    with simulator() as sim:
        options: dict[str, Any] = {"provider": "gemini", "base_url": sim.base_url, "api_key": "k"}
        result = llmbatch.run(task, records, cache_dir=False, job_dir=tmp_path / "job", **options)
        with pytest.raises(UsageError, match="cache_retention is read only by"):
            llmbatch.run(task, records, cache_retention="1h", **options)
    assert [r.status for r in result.results] == ["ok"] * 30
    assert result.metrics["items_ok"] == 30
