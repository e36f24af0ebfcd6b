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
send one request alone before fanning out. A batch is the extreme case (its requests
run in parallel, so a cold batch reads nothing and every line pays the write):
``primes_batch_cache`` has the batch runner send one pack synchronously, with the
lines' own prefix, before it submits the rest. Batch lines ask for an entry of an
hour (``BATCH_CACHE_TTL``), as a batch may reach them long after the priming request.

The Message Batches API (``--mode batch``): each line is ``{custom_id, params}``
with the same ``messages_body``; results are read per line by ``result.type``
(succeeded, errored, canceled, expired — only succeeded is billed).

The SDK's own retries are off (the policy retries); its errors are translated in
``map_anthropic_errors``. The SDK takes seconds to import, so it is imported on
first use: ``--provider openai`` never pays for it.

Sampling: the SDK (1.0 on) has no ``temperature``, ``top_p`` or ``top_k`` arguments,
while the API still takes them on the models that sample (Opus 4.7 on rejects them:
``ModelTraits.sampling`` in the model table). They are sent as extra body fields, and
only when the task sets them; by default Claude samples at its own default.

Why one module: a provider is one module. Its request body, error mapping and batch API
share one SDK client and its quirks, so adding or fixing a provider means reading one
file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Final

import pydantic

from .._exceptions import (
    AuthenticationError,
    BadRequest,
    BatchLineLost,
    ConnectionFailed,
    FatalError,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RequestTimeout,
    ServerError,
    UnknownProviderError,
    UsageError,
)
from .._gates.headers import parse_retry_after, rate_limit_headers
from .._pricing import DEFAULT_TRAITS, ModelTraits, model_traits
from .._types import Capabilities, Completion, Request, Usage
from .base import (
    NUMBER,
    TABLE,
    WHOLE,
    BatchLimits,
    BatchResult,
    BatchStatus,
    Param,
    Provider,
    ProviderConfig,
    api_key_or_placeholder,
    check_sampling,
    deadline,
    describe_json,
    json_body,
    json_count,
    register,
    scrub,
    status_error,
    transfer_time,
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
CACHE_TTLS: Final = ("5m", "1h")
"""How long a cache entry lives from its last read (``cache_control.ttl``); a write of 5m costs
1.25× input, one of 1h 2×."""
BATCH_CACHE_TTL: Final = "1h"
"""Batch lines' entries, unless --cache-retention says otherwise: a batch may reach its lines
more than five minutes after the request that primed it (Anthropic's advice for batches)."""
EXTRA_BODY: Final = ("temperature", "top_p", "top_k")
"""Body fields the API takes that the SDK has no argument for: sent as ``extra_body``."""


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


def messages_body(
    request: Request, model: str, traits: ModelTraits = DEFAULT_TRAITS, *, cache_ttl: str | None = None
) -> dict[str, Any]:
    """The Messages API body for a request (also the ``params`` of a batch-API line).

    The request's ``temperature`` and ``params`` are sent only when the task sets them,
    checked against what the model takes (``traits``) and what the API allows together.
    ``cache_ttl`` (``5m``, ``1h``) is the breakpoint's; None leaves it to the API (5m).
    """
    if request.mode == "json_schema":
        raise UsageError("the anthropic provider has no JSON-schema output; use --pack tools")
    params = request.params
    check_sampling(model, traits, request.temperature, params)
    if request.temperature is not None and "top_p" in params:
        raise UsageError("Claude takes temperature or params.top_p, not both: remove one of them")
    max_tokens = request.max_tokens
    thinking = params.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled"):
        if request.mode == "tool":
            raise UsageError(
                "params.thinking cannot be used with the forced tool of --pack tools: "
                "use --pack numbered, or remove params.thinking"
            )
        if request.temperature is not None or "top_k" in params:
            raise UsageError(
                "Claude's thinking takes no temperature or top_k: remove them, or params.thinking"
            )
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int) and not isinstance(budget, bool):
            # The thinking budget is part of max_tokens: on top of the answer's, not out of it.
            max_tokens += budget
    control = dict(CACHE_CONTROL) if cache_ttl is None else {**CACHE_CONTROL, "ttl": cache_ttl}
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "system": [{"type": "text", "text": request.system, "cache_control": control}],
        "messages": [{"role": "user", "content": request.user}],
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    body.update(params)
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
    """A Completion from a Message's JSON (or an SDK ``Message``, as in batch results).

    The content is the forced tool's input as JSON when the model called it
    (``tool_name``, or any tool when None), else the text blocks joined. A ServerError
    (retried, then the items fail) when the JSON is not a message.
    """
    if isinstance(data, pydantic.BaseModel):  # an SDK model (batch results)
        data = data.model_dump()
    content = data.get("content") if isinstance(data, dict) else None
    if not isinstance(content, list):
        raise ServerError(
            f"the endpoint answered JSON that is not a Messages API message ({describe_json(data)}): "
            "check --base-url"
        )
    blocks = [block for block in content if isinstance(block, dict)]
    call = next(
        (
            block
            for block in blocks
            if block.get("type") == "tool_use" and (tool_name is None or block.get("name") == tool_name)
        ),
        None,
    )
    if call is not None:
        text = json.dumps(call.get("input"), ensure_ascii=False)
    else:
        text = "".join(
            block["text"]
            for block in blocks
            if block.get("type") == "text" and isinstance(block.get("text"), str)
        )
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    read = json_count(usage.get("cache_read_input_tokens"))
    written = json_count(usage.get("cache_creation_input_tokens"))
    # How long the writes last, where the API says (``cache_creation``): an hour's cost 2× input.
    creation = usage.get("cache_creation")
    written_1h = json_count(creation.get("ephemeral_1h_input_tokens")) if isinstance(creation, dict) else 0
    stop = data.get("stop_reason")
    model = data.get("model")
    return Completion(
        content=text,
        finish_reason=_FINISH.get(stop if isinstance(stop, str) else "end_turn", "stop"),
        # Anthropic's input_tokens leaves out the cached part; ours is the whole prompt.
        usage=Usage(
            prompt_tokens=json_count(usage.get("input_tokens")) + read + written,
            completion_tokens=json_count(usage.get("output_tokens")),
            cached_tokens=read,
            cache_write_tokens=written,
            cache_write_1h_tokens=min(written_1h, written),
        ),
        latency=latency,
        headers=dict(headers),
        model=model if isinstance(model, str) else "",
    )


SPEND_LIMIT_CODES: Final = frozenset({"contract_spend_limit_reached", "enforced_spend_limit_reached"})
"""429s whose ``error_code`` says a spend limit is reached: waiting does not lift them."""
ACCOUNT_CODES: Final = frozenset(
    {
        "cmek_key_disabled",
        "cmek_key_network_blocked",
        "claude_code_key_creator_not_member",
        "claude_code_version_too_old",
        "organization_on_hold",
        "organization_type_not_supported",
        "organization_url_fetch_disabled",  # every request of the job carries the same sources
        "parent_organization_required",
        "workspace_human_review_disabled",
    }
)
"""400s whose ``error_code`` names the account, not the request: every request fails alike, so
the job stops (resumable) instead of splitting packs down to failed records."""


def _credential_errors(anthropic: Any) -> tuple[type[Exception], ...]:
    """The SDK's errors of loading credentials; only newer SDKs have them (and raise them only
    when no API key is given, which llmbatch always gives)."""
    names = ("CredentialsError", "WorkloadIdentityError")
    return tuple(getattr(anthropic, name) for name in names if hasattr(anthropic, name))


@contextmanager
def map_anthropic_errors(secret: str | None = None) -> Iterator[None]:
    """Translate SDK errors into llmbatch errors; scrub the API key from messages.

    429 with ``retry-after`` is a rate limit (wait, retry); 429 without one, or one
    whose ``error_code`` names a spend limit, is a spend cap, like 402 (stop: waiting
    does not help). 529 overloaded and 5xx are retried with backoff; a status or SDK
    error with no rule is an ``UnknownProviderError`` (retried).
    """
    import anthropic

    try:
        yield
    except anthropic.APITimeoutError as exc:
        raise RequestTimeout("the request timed out: no answer within --timeout") from exc
    except anthropic.APIConnectionError as exc:
        raise ConnectionFailed(scrub(f"cannot reach the endpoint: {exc}", secret)) from exc
    except anthropic.APIStatusError as exc:
        status = exc.status_code
        kind = f" {exc.type}" if exc.type else ""
        message = scrub(f"HTTP {status}{kind}: {exc.api_message or exc.message}", secret)
        headers = rate_limit_headers(exc.response.headers)
        # ``error.details.error_code`` names a cause more precisely than the status does.
        code = getattr(exc, "error_code", None)
        if status == 429:
            wait = parse_retry_after(exc.response.headers, time.time())
            named = code in SPEND_LIMIT_CODES  # a spend limit, retry-after or not
            if wait is None or named:
                why = "" if named else " (a 429 without retry-after)"
                raise QuotaExhausted(
                    f"{message} — the spend limit is reached{why}; "
                    "raise it in the Anthropic console, then run the same command again to resume",
                    status=status,
                    headers=headers,
                ) from exc
            raise RateLimited(message, retry_after=wait, headers=headers) from exc
        if code in ACCOUNT_CODES:
            raise FatalError(
                f"{message} — the account cannot send requests as it is ({code}): fix it in "
                "the Anthropic console, then run the same command again to resume",
                status=status,
                headers=headers,
            ) from exc
        if status == 402:
            raise QuotaExhausted(
                f"{message} — add credit or raise the spend limit, then run the same command again",
                status=status,
                headers=headers,
            ) from exc
        raise status_error(status, message, headers=headers, key_env="ANTHROPIC_API_KEY") from exc
    except anthropic.APIResponseValidationError as exc:
        shape = f"the endpoint answered, but not as the API does ({exc.message}): check --base-url"
        raise ServerError(scrub(shape, secret), status=exc.status_code) from exc
    except anthropic.AnthropicError as exc:
        if isinstance(exc, _credential_errors(anthropic)):
            # The SDK's own credential loading (profiles, workload identity): waiting does not help.
            raise AuthenticationError(
                scrub(f"cannot load Anthropic credentials: {exc}", secret)
                + " — set the ANTHROPIC_API_KEY environment variable or pass --api-key"
            ) from exc
        # Nothing to go on but that it happened: retried like any transient failure.
        raise UnknownProviderError(scrub(str(exc), secret)) from exc


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


def read_batch_result(entry: MessageBatchIndividualResponse, secret: str | None = None) -> BatchResult:
    """(custom_id, Completion or error) from one line of a batch's results."""
    result = entry.result
    if result.type == "succeeded":
        try:
            return entry.custom_id, parse_message(result.message, 0.0, {})
        except ProviderError as exc:
            return entry.custom_id, exc
    if result.type == "errored":
        error = result.error.error
        cls = _LINE_ERRORS.get(error.type, UnknownProviderError)
        return entry.custom_id, cls(f"batch line failed ({error.type}): {scrub(error.message, secret)}")
    kind = "expired" if result.type == "expired" else "canceled"
    return entry.custom_id, BatchLineLost(f"batch line {kind} before it was run", kind=kind)


@register("anthropic")
class AnthropicProvider(Provider):
    """Claude through the Messages API; structured output by one forced tool.

    >>> provider = AnthropicProvider(ProviderConfig(model="claude-haiku-4-5"))  # doctest: +SKIP
    >>> async with provider:  # doctest: +SKIP
    ...     completion = await provider.complete(request)
    """

    capabilities = Capabilities(
        tools=True,
        context_tokens=200_000,
        # Anthropic charges max_tokens against output tokens per minute on admission and
        # corrects it to the actual output when the request ends.
        refunds_unused_output=True,
        # One request sent alone, and answered, before fanning out: its response creates the
        # prompt-cache entry that the requests after it read.
        warm_up_first=True,
        # Cached input (cached_tokens) is not charged against input tokens per minute.
        cache_reads_count_toward_limit=False,
        primes_batch_cache=True,
    )
    batch_limits = BatchLimits(max_requests=100_000, max_bytes=256_000_000)
    accepted_params: ClassVar[Mapping[str, Param]] = {"top_p": NUMBER, "top_k": WHOLE, "thinking": TABLE}

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
        self.traits = model_traits(self.model)
        if self.traits.cache_min_tokens is not None:
            # A known minimum: warm up (and prime batches) only for a prefix that reaches it.
            self.capabilities = dataclasses.replace(
                self.capabilities, warm_up_first=False, cache_min_prefix=self.traits.cache_min_tokens
            )
        retention = config.extra.get("cache_retention")
        if retention is not None and retention not in CACHE_TTLS:
            raise UsageError(
                f"--cache-retention {retention} is not Anthropic's: it keeps a prompt prefix "
                f"{' or '.join(CACHE_TTLS)} from its last use (in_memory and 24h are OpenAI's)"
            )
        self.cache_ttl: str | None = retention
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

    def body(self, request: Request) -> dict[str, Any]:
        """The request's body, its params checked: a UsageError here is raised before sending."""
        self.check_params(request.params)
        ttl = self.cache_ttl or (BATCH_CACHE_TTL if request.for_batch else None)
        return messages_body(request, self.model, self.traits, cache_ttl=ttl)

    async def complete(self, request: Request) -> Completion:
        if self._client is None:
            await self.start()
        assert self._client is not None
        body = self.body(request)
        extra = {name: body.pop(name) for name in EXTRA_BODY if name in body}
        started = time.monotonic()
        async with deadline(self.config.timeout):
            with map_anthropic_errors(self.api_key):
                raw = await self._client.messages.with_raw_response.create(**body, extra_body=extra or None)
                text = await raw.text()
        latency = time.monotonic() - started
        data = json_body(text, raw.headers.get("content-type"), self.api_key)
        tool_name = request.schema_name if "tools" in body else None
        return parse_message(data, latency, rate_limit_headers(raw.headers), tool_name=tool_name)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- the Message Batches API --------------------------------------------------------

    def batch_line(self, custom_id: str, request: Request) -> dict[str, Any]:
        return {"custom_id": custom_id, "params": self.body(dataclasses.replace(request, for_batch=True))}

    async def _batch_client(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            await self.start()
        assert self._client is not None
        return self._client

    async def submit_batch(self, lines: Sequence[tuple[str, Request]]) -> str:
        client = await self._batch_client()
        requests: Any = [self.batch_line(custom_id, request) for custom_id, request in lines]
        # The size is what the SDK will serialize; the texts are most of it.
        size = sum(len(request.system) + len(request.user) for _, request in lines)
        async with deadline(transfer_time(self.config.timeout, size)):
            with map_anthropic_errors(self.api_key):
                batch = await client.messages.batches.create(requests=requests)
        return batch.id

    async def poll_batch(self, batch_id: str) -> BatchStatus:
        client = await self._batch_client()
        async with deadline(self.config.timeout):
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
        # The results' size is not known before they come: allow for the largest batch.
        async with deadline(transfer_time(self.config.timeout, self.batch_limits.max_bytes)):
            with map_anthropic_errors(self.api_key):
                stream = await client.messages.batches.results(batch_id)
                return [read_batch_result(entry, self.api_key) async for entry in stream]
