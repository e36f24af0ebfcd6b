"""Any OpenAI-compatible Chat Completions endpoint, through the official SDK.

The SDK's own retries are off: retrying is the policy's job, which knows about
packs, splits and the shared rate limit. Every SDK error is translated into
llmbatch's exception tree in ``map_openai_errors``.

The Batch API (``--mode batch``): the lines are uploaded as one JSONL file
(``purpose="batch"``), a batch over it is created for ``/v1/chat/completions``
in the ``24h`` window, polled, and its output and error files are read back;
a line's failure (``response.status_code`` ≠ 200, or ``error`` such as
``batch_expired``) becomes that line's ``ProviderError`` (``batch_line_error``).

Bodies are read as plain JSON (``json_body``, ``parse_chat_response``), not through
the SDK's models: the SDK hands back a ``str`` for a body that is not JSON (a proxy's
HTML page) and an attribute-less object for JSON of the wrong shape, and servers
that speak the API loosely (no ``created``, an odd ``finish_reason``) must still work.

What the body carries depends on the model, from the model table (``ModelTraits``):
reasoning models get ``max_completion_tokens`` and no default temperature. The
official endpoint gets ``max_completion_tokens`` for every model (it takes it on all
current ones); a server of its own (``--base-url``: vLLM, llama.cpp, the simulator)
keeps ``max_tokens``, which is what they read.

Why one module: a provider is one module. Its request body, error mapping and batch API
share one SDK client and its quirks, so adding or fixing a provider means reading one
file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, ClassVar, Final, cast

import openai
from openai._constants import RAW_RESPONSE_HEADER
from openai._legacy_response import LegacyAPIResponse
from openai.types import Batch
from openai.types.chat import ChatCompletion

from .._exceptions import (
    BatchLineLost,
    CapacityUnavailable,
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
    DEFAULT_TEMPERATURE,
    NUMBER,
    TEXT,
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
from .batch_shapes import batch_shape

__all__ = [
    "OpenAIProvider",
    "batch_line_error",
    "chat_body",
    "map_openai_errors",
    "read_batch_line",
    "read_batch_status",
]


CACHE_RETENTIONS: Final = ("in_memory", "24h")
"""``prompt_cache_retention``: OpenAI keeps a cached prefix in memory for minutes (the default),
or up to a day on the models that offer extended retention."""

RESPONSE_FORMATS = ("json_schema", "json_object")
"""How a JSON-schema pack is asked for: the OpenAI form (``json_schema``, nested
``{"json_schema": {"schema": ...}}``; OpenAI, vLLM, the C++ llama.cpp server) or
``{"type": "json_object", "schema": ...}`` (llama-cpp-python's ``llama_cpp.server``,
which rejects the OpenAI form)."""


def chat_body(
    request: Request,
    model: str,
    response_format: str = "json_schema",
    *,
    token_param: str = "max_tokens",
    traits: ModelTraits = DEFAULT_TRAITS,
    cache_key: str | None = None,
    cache_retention: str | None = None,
) -> dict[str, Any]:
    """The Chat Completions body for a request (also used for batch-API lines).

    ``token_param`` names the answer budget (``max_completion_tokens`` for reasoning
    models and the official endpoint); ``traits`` say whether the model takes a
    temperature. The request's ``params`` are sent as they are: the provider has
    checked them (``Provider.check_params``). ``cache_key`` and ``cache_retention`` are
    sent as ``prompt_cache_key`` and ``prompt_cache_retention``.
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": request.system},
            {"role": "user", "content": request.user},
        ],
        token_param: request.max_tokens,
    }
    temperature = request.temperature
    takes_sampling = check_sampling(model, traits, temperature, request.params)
    if temperature is None and takes_sampling and not traits.reasoning:
        temperature = DEFAULT_TEMPERATURE
    if temperature is not None:
        body["temperature"] = temperature
    body.update(request.params)
    if request.service_tier is not None:
        body["service_tier"] = request.service_tier
    if cache_key is not None:
        body["prompt_cache_key"] = cache_key
    if cache_retention is not None:
        body["prompt_cache_retention"] = cache_retention
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
    """A Completion from a chat completion's JSON (or an SDK ``ChatCompletion``).

    A ServerError (retried, then the items fail) when the JSON is not a chat completion:
    a wrong ``--base-url`` answers JSON of its own as readily as HTML.
    """
    if isinstance(data, openai.BaseModel):
        data = data.model_dump()
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list):
        raise ServerError(
            f"the endpoint answered JSON that is not a chat completion ({describe_json(data)}): "
            "check --base-url"
        )
    if not choices:
        raise ServerError("the provider returned no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise ServerError(
            "the endpoint answered JSON that is not a chat completion (its first choice has no "
            "message): check --base-url"
        )
    content = message.get("content")
    content = content if isinstance(content, str) else ""
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls and isinstance(calls[0], dict):
        function = calls[0].get("function")
        arguments = function.get("arguments") if isinstance(function, dict) else None
        content = arguments if isinstance(arguments, str) else ""
    finish = choice.get("finish_reason")
    finish = finish if isinstance(finish, str) and finish else "stop"
    if finish == "tool_calls":
        finish = "stop"
    if message.get("refusal") and not content:
        finish = "refusal"
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    cached = details.get("cached_tokens")
    # Reported by the models that charge a cache write (GPT-5.6 on: 1.25× input).
    written = details.get("cache_write_tokens")
    model = data.get("model")
    tier = data.get("service_tier")
    return Completion(
        content=content,
        finish_reason=finish,
        usage=Usage(
            prompt_tokens=json_count(usage.get("prompt_tokens")),
            completion_tokens=json_count(usage.get("completion_tokens")),
            cached_tokens=json_count(cached),
            cache_write_tokens=json_count(written),
        ),
        latency=latency,
        headers=headers,
        model=model if isinstance(model, str) else "",
        service_tier=tier if isinstance(tier, str) else "",
    )


def _error_code(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body, dict) else {}
    code = error.get("code") or error.get("type") or "" if isinstance(error, dict) else ""
    return str(code or getattr(exc, "code", "") or "")


def _refused(exc: BaseException) -> str | None:
    """Why the connection could not be made, when a "timeout" was that: the SDK's aiohttp
    transport maps every aiohttp connection error, a refused one too, to a connect timeout."""
    cause: BaseException | None = exc
    while cause is not None:
        # aiohttp's ClientConnectorError is an OSError; a real timeout is a TimeoutError.
        if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
            return str(cause) or type(cause).__name__
        cause = cause.__cause__ or cause.__context__
    return None


def _capacity_unavailable(status: int, code: str, message: str) -> bool:
    """Whether an error status says the flex tier had no capacity, not that the account sent
    too much: OpenAI's 429 "Resource Unavailable", Groq's 498 ``capacity_exceeded``."""
    if status == 498 or code in ("resource_unavailable", "capacity_exceeded"):
        return True
    return status == 429 and "resource unavailable" in message.lower()


QUOTA_HINT: Final = (
    "the account's quota or spend limit is exhausted; raise it, then run the same command again to resume"
)


@contextmanager
def map_openai_errors(secret: str | None = None) -> Iterator[None]:
    """Translate SDK errors into llmbatch errors; scrub the API key from messages."""
    try:
        yield
    except openai.APITimeoutError as exc:
        refused = _refused(exc)
        if refused is not None:
            raise ConnectionFailed(scrub(f"cannot reach the endpoint: {refused}", secret)) from exc
        raise RequestTimeout("the request timed out: no answer within --timeout") from exc
    except openai.APIConnectionError as exc:
        raise ConnectionFailed(scrub(f"cannot reach the endpoint: {exc}", secret)) from exc
    except openai.APIStatusError as exc:
        status, code = exc.status_code, _error_code(exc)
        message = scrub(f"HTTP {status}: {exc.message}", secret)
        headers = rate_limit_headers(exc.response.headers)
        if _capacity_unavailable(status, code, exc.message):
            raise CapacityUnavailable(message, status=status, headers=headers) from exc
        if status == 400 and "service_tier" in exc.message:
            # A model or endpoint without the flex tier: every request would be refused alike.
            raise FatalError(
                f"{message} — this model or endpoint does not take --mode flex; "
                "run the same command with --mode batch (the same discount) or --mode sync",
                status=status,
            ) from exc
        if status == 400 and "prompt_cache" in exc.message:
            # A retention the model does not take (gpt-5.5 on takes only 24h), or a server that
            # does not know the parameter: every request would be refused alike.
            raise FatalError(
                f"{message} — run the same command with another --cache-retention, or without it",
                status=status,
            ) from exc
        if status == 429:
            if code == "insufficient_quota":
                raise QuotaExhausted(f"{message} — {QUOTA_HINT}", status=status, headers=headers) from exc
            wait = parse_retry_after(exc.response.headers, time.time())
            raise RateLimited(message, retry_after=wait, headers=headers) from exc
        raise status_error(status, message, headers=headers, key_env="OPENAI_API_KEY") from exc
    except openai.APIResponseValidationError as exc:
        # An answer in the wrong shape, as parse_chat_response says of one it reads itself.
        shape = f"the endpoint answered, but not as the API does ({exc.message}): check --base-url"
        raise ServerError(scrub(shape, secret), status=exc.status_code) from exc
    except openai.OpenAIError as exc:
        # Not a failed request (a parse helper's refusal, a websocket error): nothing to go
        # on but that it happened, so it is retried like any transient failure.
        raise UnknownProviderError(scrub(str(exc), secret)) from exc


# -- the Batch API ----------------------------------------------------------------

BATCH_ENDPOINT: Final = "/v1/chat/completions"
CHAT_ENDPOINT: Final = "/chat/completions"
"""Under the client's base URL, which ends in /v1."""
_ENDED = frozenset({"completed", "expired", "cancelled", "failed"})
_CACHE_KEYS_KEPT = 1024
"""Cache keys remembered per provider (a job has one per pack size)."""


def read_batch_status(batch: Mapping[str, Any], secret: str | None = None) -> BatchStatus:
    """A batch's state from its JSON, as OpenAI or an OpenAI-shaped API writes it (Together's
    statuses are in capitals and it may give no ``request_counts``)."""
    status = str(batch.get("status") or "").lower()
    counts = batch.get("request_counts")
    counts = counts if isinstance(counts, dict) else {}
    errors = batch.get("errors")
    data = errors.get("data") if isinstance(errors, dict) else errors
    listed = [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []
    message = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in listed[:3])
    return BatchStatus(
        id=str(batch.get("id") or ""),
        status=status,
        ended=status in _ENDED,
        total=json_count(counts.get("total")),
        succeeded=json_count(counts.get("completed")),
        failed=json_count(counts.get("failed")),
        message=scrub(message, secret),
    )


def batch_line_error(status: int | None, code: str, message: str, secret: str | None = None) -> ProviderError:
    """The error of one batch line, from its ``error.code`` or else its HTTP status, read as
    a synchronous request's status is (``status_error``)."""
    text = f"batch line failed ({scrub(code, secret, 40) or status}): {scrub(message, secret)}"
    if code == "batch_expired":
        return BatchLineLost(text, kind="expired")
    if code == "batch_cancelled":
        return BatchLineLost(text, kind="canceled")
    if status == 429 and code == "insufficient_quota":
        return QuotaExhausted(f"{text} — {QUOTA_HINT}", status=status)
    if status == 429:
        # A line carries no retry-after: the policy backs off.
        return RateLimited(text)
    return status_error(status, text, key_env="OPENAI_API_KEY")


def read_batch_line(line: dict[str, Any], secret: str | None = None) -> BatchResult:
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
        return custom_id, batch_line_error(status, code, message or "no response", secret)
    try:
        return custom_id, parse_chat_response(body, 0.0, {})
    except ProviderError as exc:
        return custom_id, exc


@register("openai")
class OpenAIProvider(Provider):
    """OpenAI or any OpenAI-compatible server (vLLM, llama.cpp, Ollama, the simulator).

    >>> provider = OpenAIProvider(ProviderConfig(model="gpt-4o-mini"))  # doctest: +SKIP
    """

    capabilities = Capabilities(json_schema=True, tools=True, cache_min_prefix=1024, flex=True)
    batch_limits = BatchLimits(max_requests=50_000, max_bytes=200_000_000)
    accepted_params: ClassVar[Mapping[str, Param]] = {
        "top_p": NUMBER,
        "seed": WHOLE,
        "reasoning_effort": TEXT,
        "verbosity": TEXT,
    }

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
        # A server that constrains decoding by a grammar (vLLM, llama.cpp) does not show the
        # model the schema: --schema-in-prompt states it in the prompt too.
        if config.extra.get("schema_in_prompt", False):
            self.capabilities = replace(self.capabilities, schema_in_prompt=True)
        if self.response_format not in RESPONSE_FORMATS:
            raise UsageError(f"response format must be one of {', '.join(RESPONSE_FORMATS)}")
        self.traits = model_traits(self.model)
        # OpenAI takes max_completion_tokens on every current model and reasoning models take
        # nothing else; compatible servers read max_tokens, unless the table knows the model
        # as a reasoning one (a proxy in front of OpenAI).
        official = self.base_url is None
        self.token_param = "max_completion_tokens" if official or self.traits.reasoning else "max_tokens"
        retention = config.extra.get("cache_retention")
        if retention is not None and retention not in CACHE_RETENTIONS:
            raise UsageError(
                f"--cache-retention {retention} is not OpenAI's: it keeps a prompt prefix "
                f"{' or '.join(CACHE_RETENTIONS)} (5m and 1h are Anthropic's)"
            )
        self.cache_retention: str | None = retention
        # prompt_cache_key is OpenAI's parameter: a compatible server may refuse a field it does
        # not know, so one of its own gets it only when the user asks for a retention.
        if official or retention is not None:
            self.capabilities = replace(self.capabilities, prompt_cache_key=True)
        self._cache_keys: dict[tuple[str, str, str, tuple[str, ...]], str] = {}
        self.batch_shape = batch_shape(self.base_url, config.extra.get("batch_api"))
        self.batch_limits = self.batch_shape.limits
        window = config.extra.get("completion_window")
        self.completion_window = self.batch_shape.check_window(window) if window else self.batch_shape.window
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
                # The SDK's aiohttp transport: about half the client CPU of its default one
                # per request, and client CPU is what bounds a short job at a high tier.
                http_client=openai.DefaultAioHttpClient(timeout=self.config.timeout),
            )

    def body(self, request: Request) -> dict[str, Any]:
        """The request's body, its params checked: a UsageError here is raised before sending."""
        self.check_params(request.params)
        return chat_body(
            request,
            self.model,
            self.response_format,
            token_param=self.token_param,
            traits=self.traits,
            cache_key=self.cache_key(request) if self.capabilities.prompt_cache_key else None,
            cache_retention=self.cache_retention,
        )

    def cache_key(self, request: Request) -> str:
        """The ``prompt_cache_key`` of a request: one per model, prompt prefix and pack schema, so
        that every request of a job sharing a prefix is routed to the same cache (and a re-run,
        or another job with the same task, reaches it too).

        The prefix and the schema's keys stand for the schema within a job (a pack's schema
        is its task's item schema under those keys); the digest is taken once for each.
        """
        schema = request.schema or {}
        required = schema.get("required")
        memo = (request.system, request.mode, request.schema_name, tuple(required or ()))
        key = self._cache_keys.get(memo)
        if key is None:
            if len(self._cache_keys) >= _CACHE_KEYS_KEPT:
                self._cache_keys.clear()
            prefix = json.dumps([self.model, request.system, request.mode, schema], sort_keys=True)
            key = self._cache_keys[memo] = "llmbatch-" + hashlib.sha256(prefix.encode()).hexdigest()[:16]
        return key

    async def complete(self, request: Request) -> Completion:
        if self._client is None:
            await self.start()
        assert self._client is not None
        body = self.body(request)
        started = time.monotonic()
        async with deadline(self.config.timeout):
            with map_openai_errors(self.api_key):
                # The client's own post, not chat.completions.create: the typed path walks every
                # node of the body (the messages' unions, the schema) to "transform" it, ~2 ms of
                # CPU a request, a fifth of the client's whole CPU at a high tier. The body is
                # built and checked here already; the client still sends, authenticates and
                # maps errors.
                raw = cast(
                    LegacyAPIResponse[ChatCompletion],
                    await self._client.post(
                        CHAT_ENDPOINT,
                        cast_to=ChatCompletion,
                        body=body,
                        options={"headers": {RAW_RESPONSE_HEADER: "true"}},
                    ),
                )
                text = raw.text
        latency = time.monotonic() - started
        data = json_body(text, raw.headers.get("content-type"), self.api_key)
        return parse_chat_response(data, latency, rate_limit_headers(raw.headers))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- the Batch API -------------------------------------------------------------------

    def batch_line(self, custom_id: str, request: Request) -> dict[str, Any]:
        if not self.batch_shape.line_url:  # the endpoint is the batch's (Together)
            return {"custom_id": custom_id, "body": self.body(request)}
        return {"custom_id": custom_id, "method": "POST", "url": BATCH_ENDPOINT, "body": self.body(request)}

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
        purpose = cast(Any, self.batch_shape.purpose)  # the SDK types OpenAI's purposes only
        async with deadline(transfer_time(self.config.timeout, len(data))):
            with map_openai_errors(self.api_key):
                upload = await client.files.create(
                    file=("llmbatch.jsonl", data, "application/jsonl"), purpose=purpose
                )
        body = {
            "input_file_id": upload.id,
            "endpoint": BATCH_ENDPOINT,
            "completion_window": self.completion_window,
            "metadata": {"created_by": "llmbatch"},
        }
        created = await self._batch_json("post", "/batches", body)
        batch_id = created.get("id")
        if not isinstance(batch_id, str) or not batch_id:
            raise ServerError(
                f"the endpoint accepted the batch but named no id ({describe_json(created)}): "
                "check --batch-api"
            )
        return batch_id

    async def _batch_json(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A batch object as plain JSON, unwrapped from Together's ``{"job": …}``: read by hand, as
        the SDK's model would silently lack what another provider names differently."""
        client = await self._batch_client()
        options: Any = {"headers": {RAW_RESPONSE_HEADER: "true"}}
        async with deadline(self.config.timeout):
            with map_openai_errors(self.api_key):
                if method == "post":
                    raw = await client.post(path, cast_to=Batch, body=body, options=options)
                else:
                    raw = await client.get(path, cast_to=Batch, options=options)
                response = cast(LegacyAPIResponse[Batch], raw)
                text = response.text
        data = json_body(text, response.headers.get("content-type"), self.api_key)
        job = data.get("job") if isinstance(data, dict) else None
        data = job if isinstance(job, dict) else data
        if not isinstance(data, dict):
            raise ServerError(f"the endpoint answered JSON that is not a batch ({describe_json(data)})")
        return data

    async def poll_batch(self, batch_id: str) -> BatchStatus:
        return read_batch_status(await self._batch_json("get", f"/batches/{batch_id}"), self.api_key)

    async def batch_results(self, batch_id: str) -> list[BatchResult]:
        client = await self._batch_client()
        results: list[BatchResult] = []
        batch = await self._batch_json("get", f"/batches/{batch_id}")
        for file_id in (batch.get("output_file_id"), batch.get("error_file_id")):
            if not isinstance(file_id, str) or not file_id:
                continue
            # The file's size is not known before it comes: allow for the largest a batch makes.
            async with deadline(transfer_time(self.config.timeout, self.batch_limits.max_bytes)):
                with map_openai_errors(self.api_key):
                    content = await client.files.content(file_id)
            for raw in content.text.splitlines():
                try:
                    line = json.loads(raw)
                except json.JSONDecodeError:
                    continue  # no custom_id to join on: its items count as unanswered
                if isinstance(line, dict):
                    results.append(read_batch_line(line, self.api_key))
        return results
