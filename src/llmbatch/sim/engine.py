"""The simulated model, without HTTP: a chat-completions body in, a response out.

    >>> engine = SimEngine(SimConfig(seed=1))
    >>> response = await engine.chat({"model": "sim-1",
    ...     "messages": [{"role": "user", "content": "Translate to Spanish: good morning"}]})
    >>> response.status, response.body["choices"][0]["message"]["content"]
    (200, 'Translate a Spanish: bueno mañana')

One request goes through: parse (400 if malformed, or an unknown ``service_tier``) →
quota (429 ``insufficient_quota``) → the flex tier's capacity (429 Resource Unavailable,
nothing taken) → rate limits (429 ``rate_limit_exceeded``, nothing
taken) → draw faults → wait for a free slot (``max_concurrency``) → an
injected error, or a hang, or the oracle's answers, degraded by the quality
model (``_quality``: larger packs, worse answers) and with the pack's faults
applied → cut to ``max_tokens`` → sleep the latency → 200.

The server (``server.py``) only moves bytes; everything a test may want to
check, including the counters behind ``/sim/stats``, lives here.

Why one module: it is that one path, in order; what each step draws on is already apart
(``_faults``, ``_ratelimit``, ``_prefix_cache``, ``_quality``, ``oracle``), and splitting
the path itself would scatter the order a reader checks it against.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from llmbatch._pack.tokens import count_tokens
from llmbatch._task import canonical_json

from . import _quality, oracle
from ._faults import ERRORS, Faults, corrupt, draw, rng_for
from ._prefix_cache import RETENTION, PrefixCache
from ._prompt import SEPARATOR, InvalidRequest, Item, Prompt, read_body
from ._ratelimit import Admission, RateLimits
from .config import SimConfig

__all__ = ["DEFAULT_MAX_TOKENS", "SimEngine", "SimResponse", "SimStats"]

JSON = Any
DEFAULT_MAX_TOKENS = 1024
"""What a request without ``max_tokens`` costs against the TPM limit."""
FLEX_UNAVAILABLE = (
    "Resource Unavailable: flex processing has no capacity for this request right now; "
    "retry later or send it at the default tier"
)
"""The message of the flex tier's 429 (OpenAI's guide names it "429 Resource Unavailable")."""
TIERS = (None, "auto", "default", "flex")


@dataclass(frozen=True, slots=True)
class SimResponse:
    """An HTTP-shaped answer: status, JSON body and headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SimStats:
    """Counters behind ``/sim/stats``. ``rate_limited`` counts every 429, quota ones included,
    but not the flex tier's "resource unavailable" (``flex_unavailable``)."""

    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    items_requested: int = 0
    items_answered: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    rate_limited: int = 0
    flex_requests: int = 0
    flex_unavailable: int = 0
    """Flex requests answered 429 Resource Unavailable (not in ``rate_limited``)."""
    cache_keys: Counter[str] = field(default_factory=Counter)
    """Requests by their ``prompt_cache_key``."""
    cache_retention: Counter[str] = field(default_factory=Counter)
    """Requests by their ``prompt_cache_retention`` (``in_memory`` where none was sent)."""
    in_flight: int = 0
    max_concurrent: int = 0
    """Most requests inside the engine at once (waiting for a slot included)."""
    max_active: int = 0
    """Most requests holding a completion slot at once (≤ ``max_concurrency``)."""
    pack_sizes: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "items_requested": self.items_requested,
            "items_answered": self.items_answered,
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "rate_limited": self.rate_limited,
            "flex_requests": self.flex_requests,
            "flex_unavailable": self.flex_unavailable,
            "prompt_cache_keys": dict(self.cache_keys),
            "prompt_cache_retention": dict(self.cache_retention),
            "in_flight": self.in_flight,
            "max_concurrent": self.max_concurrent,
            "max_active": self.max_active,
            "pack_sizes": {str(k): v for k, v in sorted(self.pack_sizes.items())},
            "faults": dict(sorted(self.faults.items())),
        }


class SimEngine:
    """A deterministic model that follows instructions, with seeded faults and limits.

    ``sleep`` and ``clock`` are injectable: tests pass a recording sleep to
    check latency and hangs without waiting, and a fake clock to move the rate
    limit buckets.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or SimConfig()
        self.stats = SimStats()
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._limits = RateLimits(self.config.rate_limit_rpm, self.config.rate_limit_tpm, clock)
        self._prefixes = PrefixCache(clock)
        self.anthropic_cache: dict[str, float] = {}
        """Anthropic's prompt cache, prefix hash → expiry (monotonic seconds): one per model
        server, shared by its Messages endpoint and its Message Batches."""
        self._seen: Counter[str] = Counter()
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self._active = 0
        # Created on first use, inside the event loop that serves requests.
        self._slots: asyncio.Semaphore | None = None

    def reset_stats(self) -> None:
        """Zero the counters (requests in flight stay counted as in flight)."""
        in_flight = self.stats.in_flight
        self.stats = SimStats(in_flight=in_flight)

    async def chat(
        self,
        body: Any,
        *,
        admit: Callable[[], Admission] | None = None,
        automatic_cache: bool = True,
    ) -> SimResponse:
        """Answer one ``POST /v1/chat/completions`` body.

        ``admit`` replaces the engine's own rate limits for this request: it is
        called once the body is understood and the quota checked, and says
        whether the request may go on (the Anthropic endpoint counts input and
        output tokens in buckets of their own). ``automatic_cache=False`` keeps
        the request out of OpenAI's automatic prompt cache (on with
        ``SimConfig.prompt_caching``): Anthropic's cache is explicit and its own.
        """
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_concurrent = max(stats.max_concurrent, stats.in_flight)
        # The tier is OpenAI's parameter: the Anthropic endpoint (``admit``) has its own.
        tier = body.get("service_tier") if admit is None and isinstance(body, dict) else None
        try:
            response = await self._chat(body, admit, automatic_cache and self.config.prompt_caching, tier)
        finally:
            self.stats.in_flight -= 1
        self.stats.by_status[response.status] += 1
        if response.status == 429 and response.body["error"]["message"] is not FLEX_UNAVAILABLE:
            self.stats.rate_limited += 1
        return response

    async def _chat(
        self, body: Any, admit: Callable[[], Admission] | None, caching: bool, tier: Any
    ) -> SimResponse:
        try:
            prompt = read_body(body, cache_marks=caching)
        except InvalidRequest as exc:
            return _error(400, str(exc), "invalid_request_error", None, param=exc.param)
        if tier not in TIERS:
            message = f"Invalid value for 'service_tier': {tier!r}; expected 'auto', 'default' or 'flex'"
            return _error(400, message, "invalid_request_error", "invalid_value", param="service_tier")
        key = body.get("prompt_cache_key") if admit is None else None
        retention = body.get("prompt_cache_retention") if admit is None else None
        if key is not None and not isinstance(key, str):
            message = f"Invalid type for 'prompt_cache_key': expected a string, but got {type(key).__name__}"
            return _error(400, message, "invalid_request_error", "invalid_type", param="prompt_cache_key")
        if retention not in RETENTION:
            message = (
                f"Invalid value for 'prompt_cache_retention': {retention!r}; expected 'in_memory' or '24h'"
            )
            return _error(
                400, message, "invalid_request_error", "invalid_value", param="prompt_cache_retention"
            )
        if self.config.quota_exhausted:
            message = "You exceeded your current quota, please check your plan and billing details."
            return _error(429, message, "insufficient_quota", "insufficient_quota")
        if tier == "flex" and self._flex_is_full(prompt.fingerprint):
            # Before the rate limits: a request flex turns away is neither served nor charged.
            return _error(429, FLEX_UNAVAILABLE, "server_error", None)
        cost = prompt.prompt_tokens + (prompt.max_tokens or DEFAULT_MAX_TOKENS)
        admission = self._limits.admit(cost) if admit is None else admit()
        if not admission.admitted:
            return _rate_limited(admission.kind, admission.retry_after, cost, admission.headers)
        occurrence = self._seen[prompt.fingerprint]
        self._seen[prompt.fingerprint] += 1
        rng = rng_for(self.config.seed, prompt.fingerprint, occurrence)
        faults = draw(self.config, rng, prompt.kind, [item.key for item in prompt.items])
        self.stats.faults.update(faults.names)
        if self._slots is None and self.config.max_concurrency:
            self._slots = asyncio.Semaphore(self.config.max_concurrency)
        flex = tier == "flex"
        if key is not None:
            self.stats.cache_keys[key] += 1
        self.stats.cache_retention[retention or "in_memory"] += 1
        ttl = RETENTION[retention]
        if self._slots is None:
            return await self._complete(prompt, faults, admission.headers, flex, ttl)
        async with self._slots:
            return await self._complete(prompt, faults, admission.headers, flex, ttl)

    def _flex_is_full(self, fingerprint: str) -> bool:
        """Whether flex turns this request away, drawn from the request and how often it came."""
        self.stats.flex_requests += 1
        if not self.config.flex_unavailable:
            return False
        key = f"flex:{fingerprint}"
        occurrence = self._seen[key]
        self._seen[key] += 1
        full = rng_for(self.config.seed, key, occurrence).random() < self.config.flex_unavailable
        self.stats.flex_unavailable += full
        return full

    async def _complete(
        self, prompt: Prompt, faults: Faults, headers: dict[str, str], flex: bool, ttl: float
    ) -> SimResponse:
        self._active += 1
        self.stats.max_active = max(self.stats.max_active, self._active)
        try:
            return await self._answer(prompt, faults, headers, flex, ttl)
        finally:
            self._active -= 1

    async def _answer(
        self, prompt: Prompt, faults: Faults, headers: dict[str, str], flex: bool, ttl: float
    ) -> SimResponse:
        config = self.config
        if faults.error_status is not None:
            await self._sleep(config.base_latency * config.time_scale)
            message, kind, code = ERRORS[faults.error_status]
            return _error(faults.error_status, message, kind, code, headers=headers)
        if faults.hang:
            # Real seconds: the point is to outlast the client's timeout.
            await self._sleep(config.hang_seconds)
        content, answered = self._content(prompt, faults)
        finish = "tool_calls" if prompt.kind == "tools" else "stop"
        if faults.truncate_at is not None:
            content = content[: int(faults.truncate_at * len(content))]
            finish = "length"
        if prompt.max_tokens is not None and count_tokens(content) > prompt.max_tokens:
            content = _fit(content, prompt.max_tokens)
            finish = "length"
            self.stats.faults["length"] += 1
        completion_tokens = count_tokens(content)
        cached = self._prefixes.read(prompt.prefix_hashes)
        latency = (
            config.base_latency
            + config.per_input_token * (prompt.prompt_tokens - cached)
            + config.per_output_token * completion_tokens
        ) * config.time_scale
        if flex:
            latency *= config.flex_latency
        await self._sleep(latency)
        self._prefixes.write(prompt.prefix_hashes, ttl)
        stats = self.stats
        stats.items_requested += len(prompt.items)
        stats.items_answered += answered
        stats.prompt_tokens += prompt.prompt_tokens
        stats.cached_tokens += cached
        stats.completion_tokens += completion_tokens
        if prompt.kind != "plain":
            stats.pack_sizes[len(prompt.items)] += 1
        body = self._completion(prompt, content, finish, completion_tokens, cached)
        body["service_tier"] = "flex" if flex else "default"
        return SimResponse(200, body, {**headers, "x-request-id": body["id"]})

    # -- content -----------------------------------------------------------------

    def _content(self, prompt: Prompt, faults: Faults) -> tuple[str, int]:
        """The completion text (or tool arguments) and how many items it answers."""
        answers: list[tuple[str, JSON]] = []
        for position, item in enumerate(prompt.items):
            if item.key in faults.dropped:
                continue
            value = oracle.answer(item.schema, prompt.instructions, item.text)
            value = self._degrade(item, value, position, len(prompt.items))
            if item.key in faults.corrupted:
                value = corrupt(item.schema, value, self._validator(item.schema))
            answers.append((item.key, value))
        renumber = dict(faults.misnumbered)
        if prompt.kind in ("json", "tools"):
            content = _compact(dict(answers))
            if faults.malformed:
                content = content[:-1]  # the closing brace never came
        elif prompt.kind == "numbered":
            lines = [f"{renumber.get(key, key)}: {_compact(value)}" for key, value in answers]
            if faults.malformed:
                lines = [f"- {_compact(value)}" for _, value in answers]  # keys forgotten
            content = "\n".join(lines)
        elif prompt.kind == "separator":
            texts = [_plain(value) for _, value in answers]
            glue = "\n\n" if faults.malformed else f"\n{SEPARATOR}\n"
            content = "" if faults.malformed and len(texts) == 1 else glue.join(texts)
        else:
            content = _plain(answers[0][1]) if _is_text(prompt.items[0]) else _compact(answers[0][1])
            if faults.malformed:
                content = "" if _is_text(prompt.items[0]) else content[:-1]
        return content, len(answers)

    def _degrade(self, item: Item, value: JSON, position: int, size: int) -> JSON:
        """The quality model (``_quality``): shorter, or wrong but valid, the larger the pack."""
        config = self.config
        if size < 2 or not (config.pack_accuracy_decay or config.answer_shortening):
            return value
        if config.answer_shortening and isinstance(value, str) and _is_text(item):
            shorter = _quality.shorten(value, config.answer_shortening, size)
            if shorter != value:
                self.stats.faults["shortened"] += 1
                value = shorter
        if config.pack_accuracy_decay:
            rng = _quality.quality_rng(config.seed, size, position, item.text)
            if rng.random() < _quality.wrong_probability(config.pack_accuracy_decay, size, position):
                wrong = _quality.degrade(item.schema, value, rng, self._validator(item.schema))
                if wrong != value:
                    self.stats.faults["wrong"] += 1
                    value = wrong
        return value

    def _validator(self, schema: dict[str, Any]) -> Callable[[JSON], bool]:
        key = canonical_json(schema)
        if key not in self._validators:
            self._validators[key] = jsonschema.Draft202012Validator(schema)
        is_valid: Callable[[JSON], bool] = self._validators[key].is_valid
        return is_valid

    def _completion(
        self, prompt: Prompt, content: str, finish: str, completion_tokens: int, cached: int
    ) -> dict[str, Any]:
        ident = hashlib.sha256(f"{prompt.fingerprint}:{self._seen[prompt.fingerprint]}".encode())
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if prompt.kind == "tools" or (prompt.kind == "plain" and prompt.tool_name):
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": "call_" + ident.hexdigest()[:24],
                    "type": "function",
                    "function": {"name": prompt.tool_name, "arguments": content},
                }
            ]
            finish = "tool_calls" if finish == "stop" else finish
        return {
            "id": "chatcmpl-" + ident.hexdigest()[24:48],
            "object": "chat.completion",
            "created": int(self._wall_clock()),
            "model": prompt.model or self.config.model,
            "system_fingerprint": "fp_sim",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt.prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt.prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }


def _compact(value: JSON) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _plain(value: JSON) -> str:
    return value if isinstance(value, str) else _compact(value)


def _is_text(item: Item) -> bool:
    return item.schema.get("type") == "string" and "enum" not in item.schema


def _fit(content: str, budget: int) -> str:
    """The longest prefix of ``content`` within ``budget`` tokens.

    Token counts of prefixes never decrease as the prefix grows, so a binary
    search over the length finds it.
    """
    low, high = 0, len(content)
    while low < high:
        mid = (low + high + 1) // 2
        if count_tokens(content[:mid]) <= budget:
            low = mid
        else:
            high = mid - 1
    return content[:low]


def _error(
    status: int,
    message: str,
    kind: str,
    code: str | None,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> SimResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return SimResponse(status, body, dict(headers or {}))


def _rate_limited(kind: str, retry_after: float | None, cost: int, headers: dict[str, str]) -> SimResponse:
    if retry_after is None:
        message = (
            f"Request too large for model on {kind} per min: requested {cost}. "
            "Reduce the prompt or max_tokens."
        )
        return _error(429, message, kind, "rate_limit_exceeded", headers=headers)
    seconds = max(0.001, round(retry_after, 3))
    message = f"Rate limit reached on {kind} per min. Please try again in {seconds:g}s."
    retry = {"retry-after": f"{seconds:g}", "retry-after-ms": str(round(seconds * 1000))}
    return _error(429, message, kind, "rate_limit_exceeded", headers={**headers, **retry})
