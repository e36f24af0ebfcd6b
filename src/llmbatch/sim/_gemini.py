"""Gemini's native API on the simulated model, as the ``google-genai`` SDK calls it::

    POST /v1beta/models/{model}:generateContent        a GenerateContentRequest → response
    POST /upload/v1beta/files                          resumable upload: ``start``, then
                                                       ``upload, finalize`` at the URL given
    POST /v1beta/models/{model}:batchGenerateContent   {"batch": {"inputConfig": {"fileName"}}}
    GET  /v1beta/batches/{id}                          the batch as an operation: its
                                                       ``metadata.state`` BATCH_STATE_*, and
                                                       ``metadata.output.responsesFile`` once done
    GET  /download/v1beta/files/{id}:download          a file's bytes (``alt=media``)

A request is translated into the chat-completions form the engine answers (system
instruction → system message, contents → messages, ``generationConfig``:
``maxOutputTokens`` → ``max_tokens``, a JSON response schema → a ``json_schema`` response
format) and written back as Gemini writes it: ``candidates[0].content.parts``,
``finishReason`` (``STOP``, ``MAX_TOKENS``), ``usageMetadata``. Errors are Google's:
``{"error": {"code", "message", "status"}}``, a 429 ``RESOURCE_EXHAUSTED`` carrying a
``RetryInfo`` delay.

Batch files (https://ai.google.dev/gemini-api/docs/batch-api): one
``{"key", "request"}`` per line; the responses file has ``{"key", "response"}`` or
``{"key", "error"}`` per line, in any order. The lifecycle and the fault draws are
``_batches.SimBatches``'s.

Why one module: it is one simulated API surface; reading a request, answering it and
writing Google's shapes back change together when the API does.
"""

from __future__ import annotations

from typing import Any

from .engine import SimEngine, SimResponse

__all__ = ["GeminiAPI", "gemini_error", "read_request", "to_gemini"]

JSON = Any

# Engine status → Google's canonical status name.
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
}


class BadRequest(Exception):
    """Not a GenerateContentRequest the simulator can answer (a 400)."""


def read_request(model: str, body: JSON) -> dict[str, Any]:
    """A GenerateContentRequest as the chat body the engine reads; BadRequest if malformed."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequest("contents is not specified")
    messages: list[dict[str, str]] = []
    system = _text(body.get("systemInstruction") or body.get("system_instruction"))
    if system:
        messages.append({"role": "system", "content": system})
    for content in contents:
        if not isinstance(content, dict):
            raise BadRequest("contents: each entry must be a Content object")
        role = "assistant" if content.get("role") == "model" else "user"
        messages.append({"role": role, "content": _text(content)})
    chat: dict[str, Any] = {"model": model, "messages": messages}
    config = body.get("generationConfig") or body.get("generation_config") or {}
    if not isinstance(config, dict):
        raise BadRequest("generationConfig must be an object")
    limit = config.get("maxOutputTokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise BadRequest("generationConfig.maxOutputTokens must be a positive integer")
        chat["max_tokens"] = limit
    if isinstance(config.get("temperature"), int | float):
        chat["temperature"] = config["temperature"]
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if schema is not None:
        if config.get("responseMimeType") != "application/json":
            raise BadRequest("a response schema needs responseMimeType application/json")
        chat["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    return chat


def _text(content: JSON) -> str:
    """The texts of a Content's parts, joined (a bare string is its own text)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, dict):
        return ""
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    return "".join(
        part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str)
    )


def to_gemini(response: SimResponse, model: str) -> SimResponse:
    """An engine answer as Gemini writes it (a GenerateContentResponse, or Google's error)."""
    if response.status != 200:
        return gemini_error(
            response.status,
            str((response.body.get("error") or {}).get("message") or "error"),
            retry_after=response.headers.get("retry-after"),
        )
    choice = response.body["choices"][0]
    usage = response.body["usage"]
    finish = "MAX_TOKENS" if choice["finish_reason"] == "length" else "STOP"
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    metadata = {
        "promptTokenCount": usage["prompt_tokens"],
        "candidatesTokenCount": usage["completion_tokens"],
        "totalTokenCount": usage["prompt_tokens"] + usage["completion_tokens"],
    }
    if cached:
        metadata["cachedContentTokenCount"] = cached
    body = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": choice["message"].get("content") or ""}]},
                "finishReason": finish,
                "index": 0,
            }
        ],
        "usageMetadata": metadata,
        "modelVersion": model,
        "responseId": response.body["id"].removeprefix("chatcmpl-"),
    }
    return SimResponse(200, body)


def gemini_error(status: int, message: str, *, retry_after: str | None = None) -> SimResponse:
    """Google's error body; a 429 says how long to wait in a ``RetryInfo`` detail."""
    error: dict[str, Any] = {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}
    if status == 429 and retry_after is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{float(retry_after):g}s"}
        ]
    return SimResponse(status, {"error": error})


class GeminiAPI:
    """``:generateContent`` over a ``SimEngine`` (the engine's own rate limits apply)."""

    def __init__(self, engine: SimEngine) -> None:
        self.engine = engine

    async def generate(self, model: str, body: JSON) -> SimResponse:
        try:
            chat = read_request(model, body)
        except BadRequest as exc:
            return gemini_error(400, str(exc))
        return to_gemini(await self.engine.chat(chat, automatic_cache=False), model)
