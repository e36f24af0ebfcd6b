"""Gemini's native API, through the official ``google-genai`` SDK (``pip install 'llmbatch[gemini]'``).

One request per pack: the instructions as the system instruction, the pack's items as the
user content, and the pack schema as ``responseJsonSchema`` with ``responseMimeType``
``application/json`` (structured output: the json pack). The schema's ``$ref``s are written
out in place, which every JSON-schema reader takes.

Batch Mode (``--mode batch``; https://ai.google.dev/gemini-api/docs/batch-api): the lines
``{"key", "request"}`` (a GenerateContentRequest as the REST API writes it) are uploaded as
one JSONL file through the Files API, a batch job is created over it, polled
(``JOB_STATE_PENDING`` → ``RUNNING`` → ``SUCCEEDED``), and its responses file is downloaded
and joined on ``key``. 50% off; the target is 24 hours, and a job still pending or running
after 48 is expired with no results. Chosen over Gemini's OpenAI-compatible endpoint, whose
own page says its batches cannot upload or download files, so it would need this SDK's
Files API anyway.

The SDK's retries are off (``attempts=1``: retrying is the policy's job). Its errors are
translated in ``map_gemini_errors``: ``APIError.code`` is the HTTP status; a 429
(``RESOURCE_EXHAUSTED``) is a rate limit whose wait is the ``RetryInfo`` detail's
``retryDelay``. The SDK takes a while to import, so it is imported on first use.

Why one module: a provider is one module; its request body, error mapping and batch API
share one SDK client.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Final

from .._exceptions import (
    BatchLineLost,
    ConnectionFailed,
    NotAnAPI,
    ProviderError,
    RateLimited,
    RequestTimeout,
    ServerError,
    UnknownProviderError,
    UsageError,
)
from .._types import Capabilities, Completion, Request, Usage
from .base import (
    NUMBER,
    WHOLE,
    BatchLimits,
    BatchResult,
    BatchStatus,
    Param,
    Provider,
    ProviderConfig,
    api_key_or_placeholder,
    deadline,
    describe_json,
    json_count,
    register,
    scrub,
    status_error,
    transfer_time,
)

__all__ = [
    "GeminiProvider",
    "inline_refs",
    "map_gemini_errors",
    "parse_generate_response",
    "rest_request",
    "retry_delay",
]

DEFAULT_MODEL = "gemini-2.5-flash"
KEY_ENV = "GEMINI_API_KEY"
_ENDED: Final = frozenset(
    {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
)
_SDK_FIELDS: Final = ("sdkHttpResponse", "automaticFunctionCallingHistory")
"""Fields the SDK adds to a response it hands back."""
_FINISH: Final = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "refusal", "RECITATION": "refusal"}


def inline_refs(schema: Any, defs: Mapping[str, Any] | None = None) -> Any:
    """The schema with every local ``$ref`` (``#/$defs/name``) replaced by its definition.

    >>> schema = {"properties": {"k1": {"$ref": "#/$defs/answer"}}, "$defs": {"answer": {"type": "string"}}}
    >>> inline_refs(schema)
    {'properties': {'k1': {'type': 'string'}}}
    """
    if isinstance(schema, dict):
        defs = schema.get("$defs", defs) or {}
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
            return inline_refs(defs[ref[8:]], defs)
        return {key: inline_refs(value, defs) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [inline_refs(value, defs) for value in schema]
    return schema


def rest_request(request: Request) -> dict[str, Any]:
    """The GenerateContentRequest of a request, as the REST API (and a batch file) writes it."""
    config: dict[str, Any] = {"maxOutputTokens": request.max_tokens}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    for name, value in request.params.items():
        config["topP" if name == "top_p" else "topK" if name == "top_k" else name] = value
    if request.mode == "json_schema" and request.schema is not None:
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = inline_refs(request.schema)
    elif request.mode != "text":
        raise UsageError("the gemini provider takes --pack json, numbered or separator, not tools")
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": request.user}]}],
        "generationConfig": config,
    }
    if request.system:
        body["systemInstruction"] = {"parts": [{"text": request.system}]}
    return body


def parse_generate_response(data: Any, latency: float) -> Completion:
    """A Completion from a GenerateContentResponse's JSON; a ServerError when it is not one."""
    candidates = data.get("candidates") if isinstance(data, dict) else None
    if data == {}:
        # The SDK reads an empty body, and JSON without a single field of the answer's, alike.
        raise ServerError(
            "the endpoint answered 200 with an empty body, or JSON that is not a "
            "GenerateContentResponse: check --base-url"
        )
    if not isinstance(candidates, list):
        raise ServerError(
            f"the endpoint answered JSON that is not a GenerateContentResponse ({describe_json(data)}): "
            "check --base-url"
        )
    first: dict[str, Any] = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    content = first.get("content")
    content = content if isinstance(content, dict) else {}
    parts = content.get("parts")
    parts = parts if isinstance(parts, list) else []
    # Thought parts (``thought: true``) are the model's reasoning, not its answer.
    text = "".join(
        p["text"]
        for p in parts
        if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
    )
    reason = first.get("finishReason")
    finish = _FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"
    if not candidates:
        finish = "refusal"  # the prompt was blocked (``promptFeedback``)
    usage = data.get("usageMetadata") if isinstance(data.get("usageMetadata"), dict) else {}
    model = data.get("modelVersion")
    return Completion(
        content=text,
        finish_reason=finish,
        usage=Usage(
            prompt_tokens=json_count(usage.get("promptTokenCount")),
            # Thinking is billed as output.
            completion_tokens=json_count(usage.get("candidatesTokenCount"))
            + json_count(usage.get("thoughtsTokenCount")),
            cached_tokens=json_count(usage.get("cachedContentTokenCount")),
        ),
        latency=latency,
        headers={},
        model=model if isinstance(model, str) else "",
    )


def retry_delay(details: Any) -> float | None:
    """Seconds from a Google error's ``RetryInfo`` detail (``"retryDelay": "12s"``), if any."""
    error = details.get("error") if isinstance(details, dict) else None
    entries = error.get("details") if isinstance(error, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        delay = entry.get("retryDelay") if isinstance(entry, dict) else None
        match = re.fullmatch(r"(\d+(?:\.\d+)?)s", delay) if isinstance(delay, str) else None
        if match:
            return float(match[1])
    return None


@contextmanager
def map_gemini_errors(secret: str | None = None) -> Iterator[None]:
    """Translate the SDK's errors into llmbatch's; scrub the API key from messages."""
    from google.genai import errors

    try:
        yield
    except errors.APIError as exc:
        status = exc.code
        message = scrub(f"HTTP {status} {exc.status or ''}: {exc.message or exc}", secret)
        if status == 429:
            raise RateLimited(message, retry_after=retry_delay(exc.details)) from exc
        raise status_error(status, message, key_env=KEY_ENV) from exc
    except TimeoutError as exc:
        raise RequestTimeout("the request timed out: no answer within --timeout") from exc
    except OSError as exc:  # refused, reset, unreachable (aiohttp's errors are OSErrors)
        raise ConnectionFailed(scrub(f"cannot reach the endpoint: {exc}", secret)) from exc
    except json.JSONDecodeError as exc:
        raise _not_json(exc.doc, secret) from exc
    except (errors.UnknownApiResponseError, ValueError) as exc:
        # An answer the SDK could not read (a proxy's page, a wrong --base-url).
        raise ServerError(scrub(f"the endpoint answered, but not as the API does: {exc}", secret)) from exc
    except Exception as exc:
        module = type(exc).__module__
        if module.startswith(("aiohttp", "httpx")):
            raise ConnectionFailed(scrub(f"cannot reach the endpoint: {exc}", secret)) from exc
        if module.startswith("google."):
            # The SDK's own (an interrupted stream, credentials): retried like any transient failure.
            raise UnknownProviderError(scrub(f"{type(exc).__name__}: {exc}", secret)) from exc
        raise


def _not_json(text: str, secret: str | None) -> ProviderError:
    """What a body the SDK could not decode was, as ``json_body`` says it for the other providers.

    The SDK keeps the response's content type to itself; an HTML page is known by its first
    character. A page is ``NotAnAPI`` (as good as unreachable: retried, failing no record,
    stopping the job if it lasts); JSON cut short or an empty body is a ``ServerError``.
    """
    start = scrub(text, secret, limit=80)
    stripped = text.lstrip()
    if not stripped:
        return ServerError("the endpoint answered 200 with an empty body: check --base-url")
    if stripped[0] in "{[":
        return ServerError(
            f"the endpoint returned JSON that is not valid (cut short?): the body starts {start!r}"
        )
    kind = "text/html" if stripped[0] == "<" else "text"
    return NotAnAPI(f"the endpoint returned {kind}, not JSON: check --base-url (the body starts {start!r})")


def _line_error(error: Any, secret: str | None) -> ProviderError:
    """The error of one batch line (Google's ``{"code", "message", "status"}``)."""
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    status = str(error.get("status") or "")
    text = f"batch line failed ({status or code}): {scrub(str(error.get('message') or ''), secret)}"
    if status == "DEADLINE_EXCEEDED" or code == 504:
        return BatchLineLost(text, kind="expired")
    if code == 429:
        return RateLimited(text)
    return status_error(code, text, key_env=KEY_ENV)


@register("gemini")
class GeminiProvider(Provider):
    """Gemini through its native API; structured output by ``responseJsonSchema``.

    >>> provider = GeminiProvider(ProviderConfig(model="gemini-2.5-flash"))  # doctest: +SKIP
    """

    capabilities = Capabilities(json_schema=True, context_tokens=1_000_000)
    batch_limits = BatchLimits(max_requests=50_000, max_bytes=2_000_000_000)
    accepted_params: ClassVar[Mapping[str, Param]] = {"top_p": NUMBER, "top_k": WHOLE}

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        base_url = config.base_url or os.environ.get("GEMINI_BASE_URL") or None
        # The SDK adds /v1beta itself: take a URL with or without it (the simulator prints /v1).
        self.base_url = re.sub(r"/v1(beta)?/?$", "", base_url.rstrip("/")) if base_url else None
        self.api_key = api_key_or_placeholder(
            config.api_key or os.environ.get(KEY_ENV) or os.environ.get("GOOGLE_API_KEY"),
            self.base_url,
            f"no API key: set the {KEY_ENV} environment variable or pass --api-key",
        )
        self.model = config.model or os.environ.get("LLMBATCH_MODEL") or DEFAULT_MODEL
        self._client: Any = None

    @property
    def endpoint(self) -> str:
        return f"{self.name}:{self.base_url or 'default'}"

    async def start(self) -> None:
        if self._client is not None:
            return
        try:
            from google import genai
            from google.genai import types
        except ImportError as exc:
            raise UsageError(
                "the gemini provider needs the google-genai SDK: pip install 'llmbatch[gemini]'"
            ) from exc
        options = types.HttpOptions(
            base_url=self.base_url,
            api_version="v1beta",
            timeout=int(self.config.timeout * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        self._client = genai.Client(api_key=self.api_key, http_options=options)

    def body(self, request: Request) -> dict[str, Any]:
        """The request's REST body, its params checked: a UsageError here is raised before sending."""
        self.check_params(request.params)
        return rest_request(request)

    async def complete(self, request: Request) -> Completion:
        await self.start()
        from google.genai import types

        body = self.body(request)
        generation = body["generationConfig"]
        config = types.GenerateContentConfig(
            system_instruction=request.system or None,
            max_output_tokens=generation["maxOutputTokens"],
            temperature=generation.get("temperature"),
            top_p=generation.get("topP"),
            top_k=generation.get("topK"),
            response_mime_type=generation.get("responseMimeType"),
            response_json_schema=generation.get("responseJsonSchema"),
        )
        started = time.monotonic()
        async with deadline(self.config.timeout):
            with map_gemini_errors(self.api_key):
                response = await self._client.aio.models.generate_content(
                    model=self.model, contents=request.user, config=config
                )
        data = response.model_dump(mode="json", by_alias=True, exclude_none=True)
        for added in _SDK_FIELDS:  # the SDK's own, not the answer's
            data.pop(added, None)
        return parse_generate_response(data, time.monotonic() - started)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
            self._client = None

    # -- Batch Mode ------------------------------------------------------------------------

    def batch_line(self, custom_id: str, request: Request) -> dict[str, Any]:
        return {"key": custom_id, "request": self.body(request)}

    async def submit_batch(self, lines: Sequence[tuple[str, Request]]) -> str:
        await self.start()
        from google.genai import types

        data = b"".join(
            json.dumps(self.batch_line(key, request), ensure_ascii=False).encode() + b"\n"
            for key, request in lines
        )
        async with deadline(transfer_time(self.config.timeout, len(data))):
            with map_gemini_errors(self.api_key):
                uploaded = await self._client.aio.files.upload(
                    file=io.BytesIO(data),
                    config=types.UploadFileConfig(mime_type="jsonl", display_name="llmbatch.jsonl"),
                )
        async with deadline(self.config.timeout):
            with map_gemini_errors(self.api_key):
                job = await self._client.aio.batches.create(
                    model=self.model,
                    src=uploaded.name,
                    config=types.CreateBatchJobConfig(display_name="llmbatch"),
                )
        if not job.name:
            raise ServerError("the endpoint accepted the batch but named no job")
        return str(job.name)

    async def _job(self, batch_id: str) -> Any:
        await self.start()
        async with deadline(self.config.timeout):
            with map_gemini_errors(self.api_key):
                return await self._client.aio.batches.get(name=batch_id)

    async def poll_batch(self, batch_id: str) -> BatchStatus:
        job = await self._job(batch_id)
        state = getattr(job.state, "value", str(job.state or ""))
        error = getattr(job, "error", None)
        return BatchStatus(
            id=batch_id,
            status=state,
            ended=state in _ENDED,
            total=0,
            succeeded=0,
            failed=0,
            message=scrub(str(getattr(error, "message", "") or ""), self.api_key),
        )

    async def batch_results(self, batch_id: str) -> list[BatchResult]:
        job = await self._job(batch_id)
        name = job.dest.file_name if job.dest is not None else None
        if not name:
            return []  # failed, cancelled or expired as a whole: every line goes again
        async with deadline(transfer_time(self.config.timeout, self.batch_limits.max_bytes)):
            with map_gemini_errors(self.api_key):
                content = await self._client.aio.files.download(file=name)
        results: list[BatchResult] = []
        for raw in (content or b"").decode("utf-8", "replace").splitlines():
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                continue  # no key to join on: its items count as unanswered
            if not isinstance(line, dict) or not isinstance(line.get("key"), str):
                continue
            if "response" in line:
                try:
                    results.append((line["key"], parse_generate_response(line["response"], 0.0)))
                except ProviderError as exc:
                    results.append((line["key"], exc))
            else:
                results.append((line["key"], _line_error(line.get("error"), self.api_key)))
        return results
