"""Any OpenAI-compatible Chat Completions endpoint, through the official SDK.

The SDK's own retries are off: retrying is the policy's job, which knows about
packs, splits and the shared rate limit. Every SDK error is translated into
llmbatch's exception tree in ``map_openai_errors``.

The Batch API (``--mode batch``): the lines are uploaded as one JSONL file
(``purpose="batch"``), a batch over it is created for ``/v1/chat/completions``
in the ``24h`` window, polled, and its output and error files are read back;
a line's failure (``response.status_code`` ≠ 200, or ``error`` such as
``batch_expired``) becomes that line's ``ProviderError`` (``batch_line_error``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import openai
import pydantic

from .._exceptions import (
    BadRequest,
    BatchLineLost,
    ConnectionFailed,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RequestTimeout,
    ServerError,
    UsageError,
)
from .._headers import parse_retry_after, rate_limit_headers
from .._types import Completion, Request, Usage
from .base import (
    BatchLimits,
    BatchResult,
    BatchStatus,
    Provider,
    ProviderConfig,
    api_key_or_placeholder,
    register,
    scrub,
    status_error,
)

__all__ = ["OpenAIProvider", "batch_line_error", "chat_body", "map_openai_errors", "read_batch_line"]


RESPONSE_FORMATS = ("json_schema", "json_object")
"""How a JSON-schema pack is asked for: the OpenAI form (``json_schema``, nested
``{"json_schema": {"schema": ...}}``; OpenAI, vLLM, the C++ llama.cpp server) or
``{"type": "json_object", "schema": ...}`` (llama-cpp-python's ``llama_cpp.server``,
which rejects the OpenAI form)."""


def chat_body(request: Request, model: str, response_format: str = "json_schema") -> dict[str, Any]:
    """The Chat Completions body for a request (also used for batch-API lines)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": request.system},
            {"role": "user", "content": request.user},
        ],
        "max_tokens": request.max_tokens,
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.mode == "json_schema" and request.schema is not None and response_format == "json_object":
        body["response_format"] = {"type": "json_object", "schema": request.schema}
    elif request.mode == "json_schema" and request.schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": request.schema_name, "schema": request.schema, "strict": True},
        }
    elif request.mode == "tool" and request.schema is not None:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": request.schema_name,
                    "description": "Record the answer of every item, under the item's key.",
                    "parameters": request.schema,
                    "strict": True,
                },
            }
        ]
        body["tool_choice"] = {"type": "function", "function": {"name": request.schema_name}}
        body["parallel_tool_calls"] = False
    return body


def parse_chat_response(data: Any, latency: float, headers: dict[str, str]) -> Completion:
    """A Completion from a ChatCompletion object (SDK model or plain dict)."""
    if isinstance(data, dict):
        data = openai.types.chat.ChatCompletion.model_validate(data)
    if not data.choices:
        raise ServerError("the provider returned no choices")
    choice = data.choices[0]
    message = choice.message
    content = message.content or ""
    if message.tool_calls:
        call = message.tool_calls[0]
        content = getattr(getattr(call, "function", None), "arguments", "") or ""
    finish = choice.finish_reason or "stop"
    if finish == "tool_calls":
        finish = "stop"
    if getattr(message, "refusal", None) and not content:
        finish = "refusal"
    usage = data.usage
    cached = 0
    if usage is not None and usage.prompt_tokens_details is not None:
        cached = usage.prompt_tokens_details.cached_tokens or 0
    return Completion(
        content=content,
        finish_reason=finish,
        usage=Usage(
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cached_tokens=cached,
        ),
        latency=latency,
        headers=headers,
        model=data.model or "",
    )


def _error_code(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body, dict) else {}
    code = error.get("code") or error.get("type") or "" if isinstance(error, dict) else ""
    return str(code or getattr(exc, "code", "") or "")


@contextmanager
def map_openai_errors(secret: str | None = None) -> Iterator[None]:
    """Translate SDK errors into llmbatch errors; scrub the API key from messages."""
    try:
        yield
    except openai.APITimeoutError as exc:
        raise RequestTimeout("the request timed out") from exc
    except openai.APIConnectionError as exc:
        raise ConnectionFailed(scrub(f"cannot reach the endpoint: {exc}", secret)) from exc
    except openai.APIStatusError as exc:
        status, code = exc.status_code, _error_code(exc)
        message = scrub(f"HTTP {status}: {exc.message}", secret)
        headers = rate_limit_headers(exc.response.headers)
        if status == 429:
            if code == "insufficient_quota":
                raise QuotaExhausted(
                    f"{message} — the account's quota or spend limit is exhausted; "
                    "raise it, then run the same command again to resume",
                    status=status,
                ) from exc
            wait = parse_retry_after(exc.response.headers, time.time())
            raise RateLimited(message, retry_after=wait, headers=headers) from exc
        raise status_error(status, message, headers=headers, key_env="OPENAI_API_KEY") from exc
    except openai.OpenAIError as exc:
        raise ProviderError(scrub(str(exc), secret)) from exc


# -- the Batch API ----------------------------------------------------------------

BATCH_ENDPOINT: Final = "/v1/chat/completions"
_ENDED = frozenset({"completed", "expired", "cancelled", "failed"})


def batch_line_error(status: int | None, code: str, message: str) -> ProviderError:
    """The error of one batch line, from its HTTP status or its ``error.code``."""
    text = f"batch line failed ({code or status}): {message}"[:500]
    if code == "batch_expired":
        return BatchLineLost(text, kind="expired")
    if code == "batch_cancelled":
        return BatchLineLost(text, kind="canceled")
    if status == 429:
        return RateLimited(text)
    if status in (400, 413, 422):
        return BadRequest(text, status=status)
    if status is not None and (status >= 500 or status in (408, 409)):
        return ServerError(text, status=status)
    return ProviderError(text, status=status)


def read_batch_line(line: dict[str, Any]) -> BatchResult:
    """(custom_id, Completion or error) from one line of an output or error file."""
    custom_id = str(line.get("custom_id"))
    response = line.get("response") or {}
    error = line.get("error") or {}
    status = response.get("status_code") if isinstance(response, dict) else None
    body = response.get("body") if isinstance(response, dict) else None
    if error or status != 200 or not isinstance(body, dict):
        if not error and isinstance(body, dict):
            error = body.get("error") or {}
        code = str(error.get("code") or error.get("type") or "") if isinstance(error, dict) else ""
        message = str(error.get("message") or "") if isinstance(error, dict) else str(error)
        return custom_id, batch_line_error(status, code, message or "no response")
    try:
        return custom_id, parse_chat_response(body, 0.0, {})
    except pydantic.ValidationError as exc:
        return custom_id, ServerError(f"malformed batch result line: {exc.error_count()} errors")
    except ProviderError as exc:
        return custom_id, exc


@register("openai")
class OpenAIProvider(Provider):
    """OpenAI or any OpenAI-compatible server (vLLM, llama.cpp, Ollama, the simulator).

    >>> provider = OpenAIProvider(ProviderConfig(model="gpt-4o-mini"))  # doctest: +SKIP
    """

    supports_json_schema = True
    supports_tools = True
    supports_batch = True
    batch_limits = BatchLimits(max_requests=50_000, max_bytes=200_000_000)
    cache_min_prefix = 1024

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.base_url = config.base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.api_key = api_key_or_placeholder(
            config.api_key or os.environ.get("OPENAI_API_KEY"),
            self.base_url,
            "no API key: set the OPENAI_API_KEY environment variable or pass --api-key "
            "(or --base-url for a local server)",
        )
        self.model = config.model or os.environ.get("LLMBATCH_MODEL") or "gpt-4o-mini"
        self.response_format = config.extra.get("response_format") or "json_schema"
        if self.response_format not in RESPONSE_FORMATS:
            raise UsageError(f"response format must be one of {', '.join(RESPONSE_FORMATS)}")
        self._client: openai.AsyncOpenAI | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.name}:{self.base_url or 'default'}"

    async def start(self) -> None:
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                api_key=self.api_key,
                base_url=self.base_url,
                max_retries=0,
                timeout=self.config.timeout,
            )

    async def complete(self, request: Request) -> Completion:
        if self._client is None:
            await self.start()
        assert self._client is not None
        body = chat_body(request, self.model, self.response_format)
        started = time.monotonic()
        with map_openai_errors(self.api_key):
            raw = await self._client.chat.completions.with_raw_response.create(**body)
            data = raw.parse()
        latency = time.monotonic() - started
        with map_openai_errors(self.api_key):
            return parse_chat_response(data, latency, rate_limit_headers(raw.headers))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- the Batch API -------------------------------------------------------------------

    def batch_line(self, custom_id: str, request: Request) -> dict[str, Any]:
        return {
            "custom_id": custom_id,
            "method": "POST",
            "url": BATCH_ENDPOINT,
            "body": chat_body(request, self.model, self.response_format),
        }

    async def _batch_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            await self.start()
        assert self._client is not None
        return self._client

    async def submit_batch(self, lines: Sequence[tuple[str, Request]]) -> str:
        client = await self._batch_client()
        data = b"".join(
            json.dumps(self.batch_line(custom_id, request), ensure_ascii=False).encode() + b"\n"
            for custom_id, request in lines
        )
        with map_openai_errors(self.api_key):
            upload = await client.files.create(
                file=("llmbatch.jsonl", data, "application/jsonl"), purpose="batch"
            )
            batch = await client.batches.create(
                input_file_id=upload.id,
                endpoint=BATCH_ENDPOINT,
                completion_window="24h",
                metadata={"created_by": "llmbatch"},
            )
        return batch.id

    async def poll_batch(self, batch_id: str) -> BatchStatus:
        client = await self._batch_client()
        with map_openai_errors(self.api_key):
            batch = await client.batches.retrieve(batch_id)
        counts = batch.request_counts
        errors = batch.errors.data if batch.errors is not None and batch.errors.data else []
        return BatchStatus(
            id=batch.id,
            status=batch.status,
            ended=batch.status in _ENDED,
            total=counts.total if counts else 0,
            succeeded=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
            message="; ".join(f"{e.code}: {e.message}" for e in errors[:3]),
        )

    async def batch_results(self, batch_id: str) -> list[BatchResult]:
        client = await self._batch_client()
        results: list[BatchResult] = []
        with map_openai_errors(self.api_key):
            batch = await client.batches.retrieve(batch_id)
            for file_id in (batch.output_file_id, batch.error_file_id):
                if not file_id:
                    continue
                content = await client.files.content(file_id)
                for raw in content.text.splitlines():
                    try:
                        line = json.loads(raw)
                    except json.JSONDecodeError:
                        continue  # no custom_id to join on: its items count as unanswered
                    if isinstance(line, dict):
                        results.append(read_batch_line(line))
        return results
