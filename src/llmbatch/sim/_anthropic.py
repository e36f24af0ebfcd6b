"""Anthropic's Messages API on the simulated model: ``POST /v1/messages``.

A Messages body is checked, translated into the chat-completions form the
engine understands, answered by the engine (oracle, faults, latency,
concurrency, quota) and written back in the Messages shape::

    system blocks         → one system message (the blocks' texts, joined)
    messages              → user / assistant messages (text blocks joined)
    tools, tool_choice    → function tools; the forced tool as tool_choice
    max_tokens            → max_tokens (required, as Anthropic requires it)

A tool whose input schema is an open object of item answers (no ``required``
keys: the form llmbatch sends so that the prefix stays cacheable) is read as a
pack of the items listed in the user message.

Rate limits are Anthropic's: requests, input tokens and output tokens per
minute, each a bucket of its own (``rate_limit_rpm``; ``rate_limit_tpm`` for each
token bucket), reported in ``anthropic-ratelimit-*`` headers with RFC 3339
resets; a refusal is a 429 ``rate_limit_error`` with ``retry-after`` in whole
seconds. Output tokens are charged ``max_tokens`` on admission and the unused
rest is given back with the answer; cache reads are not charged as input.

Prompt caching: a ``cache_control`` breakpoint on a system block or a tool
caches the prefix up to the last such breakpoint, in Anthropic's order: tools,
then system. A request whose prefix (model, tools, system blocks up to the
breakpoint) matches a live entry reads it (``cache_read_input_tokens``);
otherwise it writes one (``cache_creation_input_tokens``), which exists only
once that response is complete — requests sent together all write. Entries live
five minutes (an hour for ``"ttl": "1h"``) from their last use. Unlike
Anthropic, there is no minimum cacheable length (1024–4096 tokens by model).

``usage`` counts the request as sent; ``/sim/stats`` counts the chat form the
engine answered, where an open tool schema was widened to the pack's keys.

Why one module: it is one simulated API surface. Checking a Messages body, translating
it for the engine and writing the answer back in Anthropic's shape are read together
whenever the real API changes.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from llmbatch._pack.tokens import MESSAGE_OVERHEAD, count_tokens
from llmbatch._task import canonical_json

from ._prompt import _keyed_items
from ._ratelimit import Admission, TokenBucket
from .engine import SimEngine, SimResponse

__all__ = ["AnthropicLimits", "AnthropicMessages"]

JSON = Any
TTL = {"5m": 300.0, "1h": 3600.0}

# Engine error (status, type) → Anthropic (status, error type, message).
_ERRORS: dict[int, tuple[int, str, str]] = {
    500: (500, "api_error", "Internal server error"),
    502: (502, "api_error", "Bad gateway"),
    503: (529, "overloaded_error", "Overloaded"),
}
_SPEND_CAP = (
    "You have reached your specified workspace API usage limits. "
    "You will regain access when the limit resets or is raised."
)


class BadBody(Exception):
    """The body is not a Messages request the simulator can answer (a 400)."""


class AnthropicLimits:
    """Requests, input tokens and output tokens per minute, as Anthropic counts them.

    >>> limits = AnthropicLimits(rpm=60, input_tpm=1000, output_tpm=1000, clock=lambda: 0.0)
    >>> limits.admit(input_tokens=400, max_tokens=100).admitted
    True
    """

    __slots__ = ("_buckets", "_wall_clock")

    def __init__(
        self,
        rpm: int | None,
        input_tpm: int | None,
        output_tpm: int | None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        # Kind (the header's name) → bucket, only for the limits that are set.
        self._buckets = {
            kind: TokenBucket(limit, clock)
            for kind, limit in (("requests", rpm), ("input-tokens", input_tpm), ("output-tokens", output_tpm))
            if limit
        }
        self._wall_clock = wall_clock

    def admit(self, input_tokens: int, max_tokens: int) -> Admission:
        """Take one request, its uncached input and ``max_tokens``, or refuse taking nothing."""
        amounts = {"requests": 1, "input-tokens": input_tokens, "output-tokens": max_tokens}
        waits: list[tuple[float, str]] = []
        for kind, bucket in self._buckets.items():
            bucket.refill()
            wait = bucket.wait(amounts[kind])
            if wait > 0:
                waits.append((wait, kind))
        if waits:
            wait, kind = max(waits)
            return Admission(False, kind, None if math.isinf(wait) else wait, headers=self.headers())
        for kind, bucket in self._buckets.items():
            bucket.take(amounts[kind])
        return Admission(True, headers=self.headers())

    def give_back_output(self, tokens: int) -> None:
        """Return output tokens reserved but not produced."""
        bucket = self._buckets.get("output-tokens")
        if bucket is not None and tokens > 0:
            bucket.refill()
            bucket.level = min(bucket.capacity, bucket.level + tokens)

    def headers(self) -> dict[str, str]:
        """``anthropic-ratelimit-{kind}-{limit,remaining,reset}``; reset: when the bucket is full."""
        headers: dict[str, str] = {}
        now = self._wall_clock()
        for kind, bucket in self._buckets.items():
            until_full = max(0.0, (bucket.capacity - bucket.level) / bucket.rate)
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(int(bucket.capacity))
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(max(0, math.floor(bucket.level)))
            headers[f"anthropic-ratelimit-{kind}-reset"] = rfc3339(now + until_full)
        return headers


def rfc3339(timestamp: float) -> str:
    """A Unix time as Anthropic writes it: ``2026-05-01T12:00:03Z`` (whole seconds, rounded up)."""
    return datetime.fromtimestamp(math.ceil(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AnthropicMessages:
    """``POST /v1/messages`` over a ``SimEngine``: the engine answers, this speaks Anthropic.

        messages = AnthropicMessages(SimEngine(SimConfig(seed=1)))
        response = await messages.create({"model": "sim-1", "max_tokens": 50,
            "messages": [{"role": "user", "content": "Translate to Spanish: good morning"}]})
        response.body["content"][0]["text"]  # 'Translate a Spanish: bueno mañana'

    ``clock`` (monotonic) moves the rate-limit buckets and cache expiry;
    ``wall_clock`` dates the ``*-reset`` headers.
    """

    def __init__(
        self,
        engine: SimEngine,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        config = engine.config
        self.engine = engine
        self.limits = AnthropicLimits(
            config.rate_limit_rpm, config.rate_limit_tpm, config.rate_limit_tpm, clock, wall_clock
        )
        self._clock = clock
        self._cache = engine.anthropic_cache

    async def create(self, body: Any) -> SimResponse:
        """Answer one Messages body."""
        try:
            request = _Request.read(body)
        except BadBody as exc:
            return _error(400, "invalid_request_error", str(exc))
        hit = request.cache_key is not None and self._cache.get(request.cache_key, -1.0) > self._clock()
        cached = request.prefix_tokens if request.cache_key is not None else 0
        charged = request.input_tokens - (cached if hit else 0)
        admitted = False

        def admit() -> Admission:
            nonlocal admitted
            admission = self.limits.admit(charged, request.max_tokens)
            admitted = admission.admitted
            return admission

        response = await self.engine.chat(request.chat_body(), admit=admit, automatic_cache=False)
        if response.status != 200:
            if admitted:
                self.limits.give_back_output(request.max_tokens)
            return _translate_error(response)
        output_tokens = int(response.body["usage"]["completion_tokens"])
        self.limits.give_back_output(request.max_tokens - output_tokens)
        if request.cache_key is not None:
            self._cache[request.cache_key] = self._clock() + request.cache_ttl
        usage = request.usage(output_tokens, hit=hit)
        return _translate_message(response, request.model, usage)


class _Request:
    """A Messages body, checked, with its token counts and cache prefix."""

    __slots__ = (
        "cache_key",
        "cache_ttl",
        "input_tokens",
        "max_tokens",
        "messages",
        "model",
        "prefix_tokens",
        "system",
        "tool_choice",
        "tools",
    )

    def __init__(self) -> None:
        self.model = ""
        self.max_tokens = 0
        self.system: list[dict[str, Any]] = []
        self.messages: list[tuple[str, str]] = []
        self.tools: list[dict[str, Any]] = []
        self.tool_choice: dict[str, Any] = {"type": "auto"}
        self.input_tokens = 0
        self.prefix_tokens = 0
        self.cache_key: str | None = None
        self.cache_ttl = TTL["5m"]

    @classmethod
    def read(cls, body: Any) -> _Request:
        if not isinstance(body, dict):
            raise BadBody("the request body must be a JSON object")
        if body.get("stream"):
            raise BadBody("stream: streaming is not supported by the simulator")
        self = cls()
        model, max_tokens = body.get("model"), body.get("max_tokens")
        if not isinstance(model, str) or not model:
            raise BadBody("model: Field required")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise BadBody("max_tokens: must be a positive integer")
        self.model, self.max_tokens = model, max_tokens
        self.system = _system_blocks(body.get("system"))
        self.messages = _messages(body.get("messages"))
        self.tools = _tools(body.get("tools"))
        self.tool_choice = _tool_choice(body.get("tool_choice"), self.tools)
        # Counted as the engine and the client count: each message's text plus an
        # overhead, each tool's schema as canonical JSON.
        tool_tokens = [count_tokens(canonical_json(tool["input_schema"])) for tool in self.tools]
        system_tokens = [count_tokens(block["text"]) for block in self.system]
        overhead = MESSAGE_OVERHEAD if self.system else 0
        self.input_tokens = sum(tool_tokens) + sum(system_tokens) + overhead
        self.input_tokens += sum(count_tokens(text) + MESSAGE_OVERHEAD for _, text in self.messages)
        self._find_prefix(tool_tokens, system_tokens)
        return self

    def _find_prefix(self, tool_tokens: list[int], system_tokens: list[int]) -> None:
        """The cached prefix: tools, then system blocks, up to the last breakpoint."""
        marked_system = [i for i, block in enumerate(self.system) if block.get("cache_control")]
        marked_tools = [i for i, tool in enumerate(self.tools) if tool.get("cache_control")]
        if marked_system:
            end = marked_system[-1]
            tools, system = self.tools, self.system[: end + 1]
            self.prefix_tokens = sum(tool_tokens) + sum(system_tokens[: end + 1]) + MESSAGE_OVERHEAD
            control = self.system[end]["cache_control"]
        elif marked_tools:
            end = marked_tools[-1]
            tools, system = self.tools[: end + 1], []
            self.prefix_tokens = sum(tool_tokens[: end + 1])
            control = self.tools[end]["cache_control"]
        else:
            return
        prefix = canonical_json([self.model, tools, system])
        self.cache_key = hashlib.sha256(prefix.encode()).hexdigest()
        ttl = control.get("ttl", "5m") if isinstance(control, dict) else "5m"
        self.cache_ttl = TTL.get(ttl, TTL["5m"])

    def usage(self, output_tokens: int, *, hit: bool) -> dict[str, Any]:
        """The answer's ``usage``: a hit reads the prefix, a miss writes it (for its TTL)."""
        cached = self.prefix_tokens if self.cache_key is not None else 0
        written = 0 if hit else cached
        long = self.cache_ttl == TTL["1h"]
        return {
            "input_tokens": self.input_tokens - cached,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": cached if hit else 0,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 0 if long else written,
                "ephemeral_1h_input_tokens": written if long else 0,
            },
        }

    def chat_body(self) -> dict[str, Any]:
        """The same request in the chat-completions form the engine reads."""
        messages: list[dict[str, Any]] = []
        if self.system:
            text = "\n\n".join(block["text"] for block in self.system)
            messages.append({"role": "system", "content": text})
        messages.extend({"role": role, "content": text} for role, text in self.messages)
        body: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens, "messages": messages}
        if self.tools:
            users = [text for role, text in self.messages if role == "user"]
            keys = [key for key, _ in _keyed_items(users[-1])] if users else []
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool["name"],
                        "description": tool.get("description", ""),
                        "parameters": _as_pack_schema(tool["input_schema"], keys),
                    },
                }
                for tool in self.tools
            ]
            choice = self.tool_choice
            if choice["type"] == "none":
                body["tool_choice"] = "none"
            elif choice["type"] == "tool":
                body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
            elif choice["type"] == "any":
                body["tool_choice"] = "required"
        return body


def _system_blocks(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"type": "text", "text": raw}] if raw else []
    if not isinstance(raw, list):
        raise BadBody("system: must be a string or a list of text blocks")
    for i, block in enumerate(raw):
        if (
            not isinstance(block, dict)
            or block.get("type") != "text"
            or not isinstance(block.get("text"), str)
        ):
            raise BadBody(f"system.{i}: must be a text block")
    return raw


def _messages(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise BadBody("messages: must be a non-empty list")
    out: list[tuple[str, str]] = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise BadBody(f"messages.{i}.role: must be user or assistant")
        content = message.get("content")
        if isinstance(content, list):
            texts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
            if len(texts) != len(content) or not all(isinstance(t, str) for t in texts):
                raise BadBody(f"messages.{i}.content: only text blocks are supported by the simulator")
            content = "\n".join(texts)  # type: ignore[arg-type]
        if not isinstance(content, str):
            raise BadBody(f"messages.{i}.content: must be a string or a list of blocks")
        out.append((message["role"], content))
    if out[0][0] != "user":
        raise BadBody("messages.0.role: the first message must use the user role")
    return out


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadBody("tools: must be a list")
    for i, tool in enumerate(raw):
        if (
            not isinstance(tool, dict)
            or not isinstance(tool.get("name"), str)
            or not isinstance(tool.get("input_schema"), dict)
            or tool["input_schema"].get("type") != "object"
        ):
            raise BadBody(f"tools.{i}: needs a name and an input_schema of type object")
    return raw


def _tool_choice(raw: Any, tools: list[dict[str, Any]]) -> dict[str, Any]:
    if raw is None:
        return {"type": "auto"}
    if not isinstance(raw, dict) or raw.get("type") not in ("auto", "any", "tool", "none"):
        raise BadBody("tool_choice.type: must be auto, any, tool or none")
    if raw["type"] == "tool" and raw.get("name") not in {tool["name"] for tool in tools}:
        raise BadBody(f"tool_choice.name: no tool named {raw.get('name')!r}")
    if raw["type"] in ("any", "tool") and not tools:
        raise BadBody("tool_choice: requires tools")
    return raw


def _as_pack_schema(schema: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """An open object of answers becomes the pack schema of the listed item keys."""
    answer = schema.get("additionalProperties")
    if not keys or "required" in schema or "properties" in schema or not isinstance(answer, dict):
        return schema
    pack: dict[str, Any] = {
        "type": "object",
        "properties": {key: answer for key in keys},
        "required": keys,
        "additionalProperties": False,
    }
    if "$defs" in schema:
        pack["$defs"] = schema["$defs"]
    return pack


def _translate_message(response: SimResponse, model: str, usage: dict[str, int]) -> SimResponse:
    choice = response.body["choices"][0]
    message, finish = choice["message"], choice["finish_reason"]
    ident = response.body["id"].removeprefix("chatcmpl-")
    blocks: list[dict[str, Any]] = []
    for call in message.get("tool_calls") or []:
        function = call["function"]
        try:
            value = json.loads(function["arguments"])
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict) or finish == "length":
            # Anthropic parses tool input itself: a call cut short keeps only what parsed.
            tool_input = value if isinstance(value, dict) else {}
            blocks.append(
                {"type": "tool_use", "id": f"toolu_{ident}", "name": function["name"], "input": tool_input}
            )
        else:
            blocks.append({"type": "text", "text": function["arguments"]})  # a garbled call, as text
    if not message.get("tool_calls"):
        blocks.append({"type": "text", "text": message.get("content") or ""})
    if finish == "length":
        stop = "max_tokens"
    elif any(block["type"] == "tool_use" for block in blocks):
        stop = "tool_use"
    else:
        stop = "end_turn"
    body = {
        "id": f"msg_{ident}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }
    return SimResponse(200, body, _headers(response.headers, f"req_{ident}"))


def _translate_error(response: SimResponse) -> SimResponse:
    error = response.body.get("error") or {}
    message = str(error.get("message") or "error")
    headers = _headers(response.headers)
    if response.status == 429:
        if error.get("code") == "insufficient_quota":
            return _error(429, "rate_limit_error", _SPEND_CAP, headers)
        retry = response.headers.get("retry-after")
        if retry is None:
            # Larger than a whole minute's allowance: waiting can never help.
            return _error(
                400, "invalid_request_error", "Request exceeds the tokens per minute limit", headers
            )
        seconds = math.ceil(float(retry))
        kind = error.get("type") or "requests"
        text = f"This request would exceed the rate limit for {kind} per minute. Please retry later."
        return _error(429, "rate_limit_error", text, {**headers, "retry-after": str(seconds)})
    if response.status in _ERRORS:
        status, kind, text = _ERRORS[response.status]
        return _error(status, kind, text, headers)
    return _error(response.status, "invalid_request_error" if response.status < 500 else "api_error", message)


def _headers(engine_headers: dict[str, str], request_id: str | None = None) -> dict[str, str]:
    """The engine's headers that Anthropic sends too (its own rate-limit headers, never OpenAI's)."""
    kept = {k: v for k, v in engine_headers.items() if k.startswith("anthropic-ratelimit-")}
    if request_id is not None:
        kept["request-id"] = request_id
    return kept


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> SimResponse:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return SimResponse(status, body, dict(headers or {}))
