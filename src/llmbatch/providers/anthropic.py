"""Anthropic's Messages API, through the official ``anthropic`` SDK.

One request per pack, the stable prefix first, in the order Anthropic caches it::

    tools        one tool, ``answers``, forced with ``tool_choice``; its input
                 schema is the same for every pack of a job (see ``tool_schema``)
    system       one text block — instructions, rules, answer schema — ending in
                 a ``cache_control`` breakpoint: everything up to it is cached
    messages     one user message with the pack's items

Anthropic's prompt cache matches the prefix tools → system → messages, so the
tool definition must be byte-identical across packs too. The pack schema names
each pack's keys in ``required``; sent as it is, every pack would change the
prefix and no request would ever read the cache. The tool therefore takes "an
object whose every value is an item answer"; the pack's keys are listed in the
user message, and the parser checks that each one is answered.

A cache entry exists only once its first response has started, so requests sent
at the same moment all pay the cache write: ``warm_up_first`` asks the runner to
send one request alone before fanning out.

The Message Batches API (``--mode batch``): each line is ``{custom_id, params}``
with the same ``messages_body``; results are read per line by ``result.type``
(succeeded, errored, canceled, expired — only succeeded is billed).

The SDK's own retries are off (the policy retries); its errors are translated in
``map_anthropic_errors``. The SDK takes seconds to import, so it is imported on
first use: ``--provider openai`` never pays for it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from .._exceptions import (
    AuthenticationError,
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

if TYPE_CHECKING:
    import anthropic
    from anthropic.types.messages import MessageBatchIndividualResponse

__all__ = [
    "AnthropicProvider",
    "map_anthropic_errors",
    "messages_body",
    "parse_message",
    "read_batch_result",
    "tool_schema",
]

DEFAULT_MODEL = "claude-haiku-4-5"
TOOL_DESCRIPTION = "Record the answer of every item, under the item's key."
CACHE_CONTROL: dict[str, str] = {"type": "ephemeral"}


# stop_reason → finish_reason as the packers read it ("length": the answer is cut).
_FINISH = {
    "end_turn": "stop",
    "tool_use": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
}


def tool_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The tool's input schema for a pack schema: the same for every pack of a task.

    A pack schema (``$defs.answer`` plus one required property per item key)
    becomes an object whose values are all item answers; any other schema is
    sent as it is.

    >>> pack = {"type": "object", "properties": {"k1": {"$ref": "#/$defs/answer"}},
    ...         "required": ["k1"], "$defs": {"answer": {"type": "string"}}}
    >>> tool_schema(pack)["additionalProperties"]
    {'$ref': '#/$defs/answer'}
    """
    defs = schema.get("$defs")
    if not isinstance(defs, Mapping) or "answer" not in defs:
        return dict(schema)
    return {"type": "object", "additionalProperties": {"$ref": "#/$defs/answer"}, "$defs": dict(defs)}


def messages_body(request: Request, model: str) -> dict[str, Any]:
    """The Messages API body for a request (also the ``params`` of a batch-API line).

    The request's ``temperature`` is not sent: the Messages API of the SDK this
    is built on has no sampling parameters.
    """
    if request.mode == "json_schema":
        raise UsageError("the anthropic provider has no JSON-schema output; use --pack tools")
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens,
        "system": [{"type": "text", "text": request.system, "cache_control": dict(CACHE_CONTROL)}],
        "messages": [{"role": "user", "content": request.user}],
    }
    if request.mode == "tool" and request.schema is not None:
        body["tools"] = [
            {
                "name": request.schema_name,
                "description": TOOL_DESCRIPTION,
                "input_schema": tool_schema(request.schema),
            }
        ]
        body["tool_choice"] = {"type": "tool", "name": request.schema_name}
    return body


def parse_message(
    data: Any, latency: float, headers: Mapping[str, str], *, tool_name: str | None = None
) -> Completion:
    """A Completion from a Message (SDK model or plain dict, as in batch results).

    The content is the forced tool's input as JSON when the model called it
    (``tool_name``, or any tool when None), else the text blocks joined.
    """
    from anthropic.types import Message

    if isinstance(data, dict):
        data = Message.model_validate(data)
    call = next(
        (
            block
            for block in data.content
            if block.type == "tool_use" and (tool_name is None or block.name == tool_name)
        ),
        None,
    )
    if call is not None:
        content = json.dumps(call.input, ensure_ascii=False)
    else:
        content = "".join(block.text for block in data.content if block.type == "text")
    usage = data.usage
    read = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    return Completion(
        content=content,
        finish_reason=_FINISH.get(data.stop_reason or "end_turn", "stop"),
        # Anthropic's input_tokens leaves out the cached part; ours is the whole prompt.
        usage=Usage(
            prompt_tokens=usage.input_tokens + read + written,
            completion_tokens=usage.output_tokens,
            cached_tokens=read,
        ),
        latency=latency,
        headers=dict(headers),
        model=data.model or "",
    )


@contextmanager
def map_anthropic_errors(secret: str | None = None) -> Iterator[None]:
    """Translate SDK errors into llmbatch errors; scrub the API key from messages.

    429 with ``retry-after`` is a rate limit (wait, retry); 429 without one is a
    spend cap, like 402 (stop: waiting does not help). 529 overloaded and 5xx
    are retried with backoff.
    """
    import anthropic

    try:
        yield
    except anthropic.APITimeoutError as exc:
        raise RequestTimeout("the request timed out") from exc
    except anthropic.APIConnectionError as exc:
        raise ConnectionFailed(scrub(f"cannot reach the endpoint: {exc}", secret)) from exc
    except anthropic.APIStatusError as exc:
        status = exc.status_code
        kind = f" {exc.type}" if exc.type else ""
        message = scrub(f"HTTP {status}{kind}: {exc.api_message or exc.message}", secret)
        headers = rate_limit_headers(exc.response.headers)
        if status == 429:
            wait = parse_retry_after(exc.response.headers, time.time())
            if wait is None:
                raise QuotaExhausted(
                    f"{message} — the spend limit is reached (a 429 without retry-after); "
                    "raise it in the Anthropic console, then run the same command again to resume",
                    status=status,
                    headers=headers,
                ) from exc
            raise RateLimited(message, retry_after=wait, headers=headers) from exc
        if status == 402:
            raise QuotaExhausted(
                f"{message} — add credit or raise the spend limit, then run the same command again",
                status=status,
                headers=headers,
            ) from exc
        raise status_error(status, message, headers=headers, key_env="ANTHROPIC_API_KEY") from exc
    except anthropic.AnthropicError as exc:
        raise ProviderError(scrub(str(exc), secret)) from exc


# -- the Message Batches API ----------------------------------------------------------

# An errored line's error type → how the policy should treat it.
_LINE_ERRORS: dict[str, type[ProviderError]] = {
    "invalid_request_error": BadRequest,
    "request_too_large": BadRequest,
    "not_found_error": BadRequest,
    "rate_limit_error": RateLimited,
    "api_error": ServerError,
    "overloaded_error": ServerError,
    "timeout_error": ServerError,
    "authentication_error": AuthenticationError,
    "permission_error": AuthenticationError,
    "billing_error": QuotaExhausted,
}


def read_batch_result(entry: MessageBatchIndividualResponse) -> BatchResult:
    """(custom_id, Completion or error) from one line of a batch's results."""
    result = entry.result
    if result.type == "succeeded":
        return entry.custom_id, parse_message(result.message, 0.0, {})
    if result.type == "errored":
        error = result.error.error
        cls = _LINE_ERRORS.get(error.type, ProviderError)
        return entry.custom_id, cls(f"batch line failed ({error.type}): {error.message}"[:500])
    kind = "expired" if result.type == "expired" else "canceled"
    return entry.custom_id, BatchLineLost(f"batch line {kind} before it was run", kind=kind)


@register("anthropic")
class AnthropicProvider(Provider):
    """Claude through the Messages API; structured output by one forced tool.

    >>> provider = AnthropicProvider(ProviderConfig(model="claude-haiku-4-5"))  # doctest: +SKIP
    >>> async with provider:  # doctest: +SKIP
    ...     completion = await provider.complete(request)
    """

    supports_json_schema = False
    supports_tools = True
    supports_batch = True
    batch_limits = BatchLimits(max_requests=100_000, max_bytes=256_000_000)
    context_tokens = 200_000
    refunds_unused_output = True
    """Anthropic charges ``max_tokens`` against output tokens per minute on admission
    and corrects it to the actual output when the request ends."""
    warm_up_first: ClassVar[bool] = True
    """Send one request alone, and wait for its answer, before fanning out: its
    response creates the prompt-cache entry that the requests after it read."""
    cache_reads_count_toward_limit: ClassVar[bool] = False
    """Cached input (``cached_tokens``) is not charged against input tokens per minute."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        base_url = config.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        # The SDK appends /v1/messages itself; accept an OpenAI-style URL ending in /v1
        # (the simulator prints one) without asking for /v1/v1/messages.
        self.base_url = base_url.rstrip("/").removesuffix("/v1") if base_url else None
        self.api_key = api_key_or_placeholder(
            config.api_key or os.environ.get("ANTHROPIC_API_KEY"),
            self.base_url,
            "no API key: set the ANTHROPIC_API_KEY environment variable or pass --api-key",
        )
        self.model = config.model or os.environ.get("LLMBATCH_MODEL") or DEFAULT_MODEL
        self._client: anthropic.AsyncAnthropic | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.name}:{self.base_url or 'default'}"

    async def start(self) -> None:
        if self._client is None:
            import anthropic

            # An explicit api_key: the SDK then reads no credential files or profiles.
            self._client = anthropic.AsyncAnthropic(
                api_key=self.api_key,
                base_url=self.base_url,
                max_retries=0,
                timeout=self.config.timeout,
            )

    async def complete(self, request: Request) -> Completion:
        if self._client is None:
            await self.start()
        assert self._client is not None
        body = messages_body(request, self.model)
        started = time.monotonic()
        with map_anthropic_errors(self.api_key):
            raw = await self._client.messages.with_raw_response.create(**body)
            message = await raw.parse()
        latency = time.monotonic() - started
        tool_name = request.schema_name if "tools" in body else None
        with map_anthropic_errors(self.api_key):
            return parse_message(message, latency, rate_limit_headers(raw.headers), tool_name=tool_name)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- the Message Batches API --------------------------------------------------------

    def batch_line(self, custom_id: str, request: Request) -> dict[str, Any]:
        return {"custom_id": custom_id, "params": messages_body(request, self.model)}

    async def _batch_client(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            await self.start()
        assert self._client is not None
        return self._client

    async def submit_batch(self, lines: Sequence[tuple[str, Request]]) -> str:
        client = await self._batch_client()
        requests: Any = [self.batch_line(custom_id, request) for custom_id, request in lines]
        with map_anthropic_errors(self.api_key):
            batch = await client.messages.batches.create(requests=requests)
        return batch.id

    async def poll_batch(self, batch_id: str) -> BatchStatus:
        client = await self._batch_client()
        with map_anthropic_errors(self.api_key):
            batch = await client.messages.batches.retrieve(batch_id)
        counts = batch.request_counts
        return BatchStatus(
            id=batch.id,
            status=batch.processing_status,
            ended=batch.processing_status == "ended",
            total=counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired,
            succeeded=counts.succeeded,
            failed=counts.errored + counts.canceled + counts.expired,
        )

    async def batch_results(self, batch_id: str) -> list[BatchResult]:
        client = await self._batch_client()
        with map_anthropic_errors(self.api_key):
            stream = await client.messages.batches.results(batch_id)
            return [read_batch_result(entry) async for entry in stream]
