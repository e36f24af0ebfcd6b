"""Core data types that flow through the pipeline.

records ─read─▶ Item ─plan─▶ pack (tuple of Item) ─render─▶ Request
─provider─▶ Completion ─parse─▶ {key: Outcome}

the two vocabularies of the job store: an item's ``ItemStatus`` and, for a failed
record or request, its ``FailureKind``; the rate limits' names (``LimitName``) and what a
provider can do (``Capabilities``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

JSON = Any
"""A value that came from, or goes to, JSON."""


class ItemStatus(enum.StrEnum):
    """An item's state in the job store (``items.status``).

    A ``StrEnum``: each member is its string, so it is stored as that text in SQLite and
    compares equal to what is read back. The values are stored data: never rename one.
    """

    PENDING = "pending"
    """Not answered yet (or in flight when the process died): this run or the next sends it."""
    DONE = "done"
    """Answered; the answer is stored."""
    FAILED = "failed"
    """Failed for good; ``error_kind`` (a ``FailureKind``) says why."""


class FailureKind(enum.StrEnum):
    """Why a record failed (``error_kind`` of a failed row), or how a request failed
    (the ``kind`` of a ``ProviderError``, in metrics and the ``requests`` table).

    Each member is its string (a ``StrEnum``): the values are stored in job stores and
    shown in metrics and ``status``, so never rename one. "Asked again" means a re-run
    of the same command makes the record pending again (``_engine.policy.MAY_PASS``);
    ``--no-retry-failed`` keeps it failed.

        >>> FailureKind.TIMEOUT == "timeout", f"{FailureKind.TIMEOUT}"
        (True, 'timeout')
    """

    # -- the record itself: no request can answer it, a re-run does not ask again
    INPUT = "input"
    """The record could not be read, has no usable id, or its input could not be rendered
    from the template (a missing or empty field). Fix the input; never sent."""
    DUPLICATE_ID = "duplicate_id"
    """The record repeats the id of an earlier record (the first one is kept). Never sent."""
    TOO_LARGE = "too_large"
    """The record alone needs a request larger than the model's context or than a
    per-minute limit allows. Shorten the record or raise the limit."""

    # -- the answer: the model answered the request, but not this record; asked again
    MISSING = "missing"
    """The answer had no entry for this record, on every attempt."""
    INVALID = "invalid"
    """The record's answer was unusable on every attempt: not valid JSON, not what the output
    schema asks, empty, or given twice (the error says which)."""
    TRUNCATED = "truncated"
    """The answer was cut off at its token budget (finish reason ``length``), even alone
    with a larger budget."""

    # -- the request: not the record's fault; asked again
    TIMEOUT = "timeout"
    """No answer within ``--timeout``, too many times."""
    CONNECTION = "connection"
    """The endpoint could not be reached (never fails a record: an outage stops the job)."""
    NOT_API = "not_api"
    """The endpoint answered, but not as the API does (an HTML page, a proxy); as ``connection``."""
    SERVER_ERROR = "server_error"
    """The provider answered 5xx (or 529 overloaded), too many times."""
    RATE_LIMITED = "rate_limited"
    """429 rate limited (a request kind: every sender waits, the pack is sent again)."""
    UNAVAILABLE = "unavailable"
    """``--mode flex``: the flex tier had no capacity (429 resource unavailable) for longer than
    ``--flex-deadline``, and ``--flex-fallback`` is ``fail`` or ``batch`` (which sends these
    records through the batch API next)."""
    RETRYABLE = "retryable"
    """A request failure that may pass, of no more precise kind (``RetryableError``)."""
    PROVIDER_ERROR = "provider_error"
    """A failure the provider edge could not place (an unexpected HTTP status or SDK error),
    too many times."""
    EXPIRED = "expired"
    """Batch mode: the provider's batch expired before it ran this record's line."""
    CANCELED = "canceled"
    """Batch mode: the provider's batch was canceled before it ran this record's line."""

    # -- rejected by the provider: not asked again
    BAD_REQUEST = "bad_request"
    """The provider rejected the request (400) with this record alone in it: its reason
    is the error. Not asked again: the same request would be rejected again."""

    # -- the job stops (a request kind: records are kept pending, never failed for it)
    FATAL = "fatal"
    """Nothing sent now can succeed (a model that does not exist: 404), of no more precise kind."""
    AUTH = "auth"
    """401 or 403: the API key is missing, wrong or not allowed to use the model."""
    QUOTA = "quota"
    """429 insufficient quota: the account's spend cap or credits are used up."""
    UNREACHABLE = "unreachable"
    """Every request failed to connect for longer than the outage limit."""
    STOPPED = "stopped"
    """The job stopped (budget, provider, interrupt) before this record was answered: the
    ``stopped`` rows of the output (with ``--engine ray``, failed rows of this kind). Not a
    failure of the record: running the same command again sends it."""

    UNKNOWN = "unknown"
    """Shown for a failed row stored without a kind; never written as one."""


def duplicate_id_error(id_: object, first: int) -> str:
    """The error of a record that repeats an earlier record's id (``FailureKind.DUPLICATE_ID``):
    one wording for the job store's rule and the Ray driver's, which has no store yet."""
    return f"duplicate id {id_!r}: first used by record {first}"


class LimitName(enum.StrEnum):
    """A provider rate limit, per minute: the rate limiter's bucket names, the names the
    rate-limit headers are parsed into, and the keys of a Ray run's shared limits."""

    REQUESTS = "requests"
    TOKENS = "tokens"
    """Prompt plus answer budget (OpenAI's TPM)."""
    INPUT_TOKENS = "input_tokens"
    """Prompt tokens alone (Anthropic's ITPM)."""
    OUTPUT_TOKENS = "output_tokens"
    """Answer tokens alone (Anthropic's OTPM)."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider's backend can carry and how its limits and prices count, as one value.

    A provider states it once (``capabilities = Capabilities(json_schema=True, ...)``); the
    pack choice, the prepare step, the limiter and the price lookup read it instead of
    checking provider names. Where an instance differs from its class (the local model's
    context is its ``n_ctx``; an OpenAI-compatible server may need the schema in the
    prompt), the instance holds ``dataclasses.replace(type(self).capabilities, ...)``.
    """

    json_schema: bool = False
    """Structured output: a JSON schema the answer is held to (the json pack)."""
    tools: bool = False
    """Tool calls with a schema (the tools pack)."""
    context_tokens: int = 128_000
    """Prompt plus answer budget that fits one request."""
    warm_up_first: bool = False
    """Send one request alone before fanning out (it creates the provider's prompt-cache entry)."""
    cache_min_prefix: int | None = None
    """Tokens from which the provider caches a prompt's prefix by itself (OpenAI: 1,024; servers
    with prefix caching, such as vLLM or llama.cpp, gain from a warm-up too): a job whose shared
    prefix reaches it is warmed up as with ``warm_up_first``."""
    prompt_cache_key: bool = False
    """Takes OpenAI's ``prompt_cache_key`` and ``prompt_cache_retention`` (the official endpoint
    and the simulator; a ``--base-url`` server is sent them only with ``--cache-retention``)."""
    primes_batch_cache: bool = False
    """A batch's requests run in parallel and read only a cache entry that exists when the batch
    starts (Anthropic): a batch of one pack goes first, and the rest once it has ended."""
    cache_reads_count_toward_limit: bool = True
    """False where cached input is not charged against the input-token limit (Anthropic)."""
    refunds_unused_output: bool = False
    """True where the provider's token limit counts actual output, not ``max_tokens``."""
    billed: bool = True
    """False for backends that cost nothing per token (a local model)."""
    flex: bool = False
    """A flex tier (OpenAI's ``service_tier="flex"``): synchronous requests at batch prices,
    slower, sometimes refused for want of capacity (``--mode flex``)."""
    schema_in_prompt: bool = False
    """True where constrained decoding holds the answer to the schema without showing it to the
    model (llama.cpp, vLLM): the packs then state it in the prompt too. Hosted APIs put the
    response format's schema in the model's context themselves, so it is sent once."""


@dataclass(frozen=True, slots=True)
class Item:
    """One record, ready to pack.

    ``key`` is the short name the item goes by inside a pack. It is unique in the
    job (derived from the record's position) and starts with a letter, so a
    model that renumbers the items 1..n — small models do — writes keys that
    match nothing: those answers are caught as missing, never misattributed.
    """

    index: int
    id: str
    text: str

    @property
    def key(self) -> str:
        return f"k{self.index}"


StructuredMode = Literal["json_schema", "tool", "text"]


@dataclass(frozen=True, slots=True)
class Request:
    """A provider-neutral request for one pack.

    ``system`` is the stable prefix (system prompt, instructions, format rules,
    answer schema): byte-identical across the requests of a job so that provider
    prompt caching matches it. ``user`` carries the items. ``temperature`` is None
    when the task sets none (the provider then picks, per model); ``params`` are the
    task's provider parameters (``[params]``), checked and sent by the provider.
    """

    system: str
    user: str
    mode: StructuredMode
    schema: Mapping[str, Any] | None
    max_tokens: int
    temperature: float | None
    est_prompt_tokens: int
    schema_name: str = "answers"
    params: Mapping[str, Any] = field(default_factory=dict)
    service_tier: str | None = None
    """The provider's processing tier to ask for (``"flex"``); None: its default."""
    for_batch: bool = False
    """Rendered as a batch API line: the provider may build it differently (Anthropic's lines ask
    for a cache entry of an hour)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one answer. ``prompt_tokens`` is the whole prompt; ``cached_tokens`` (read from
    the provider's prompt cache) and ``cache_write_tokens`` (written to it) are parts of it."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    """Prompt tokens written to the cache, which Anthropic charges above the input price
    (1.25× for five minutes); OpenAI writes its cache for free and reports none."""
    cache_write_1h_tokens: int = 0
    """The part of ``cache_write_tokens`` written to last an hour (Anthropic: 2× input)."""


@dataclass(frozen=True, slots=True)
class Completion:
    """What a provider answered: the text (or tool arguments) and its metadata."""

    content: str
    finish_reason: str
    usage: Usage
    latency: float
    headers: Mapping[str, str] = field(default_factory=dict)
    model: str = ""
    service_tier: str = ""
    """The tier the provider says processed the request (``"flex"``, ``"default"``); "" when
    it says nothing."""


OutcomeStatus = Literal["ok", FailureKind.MISSING, FailureKind.INVALID]
"""An answer for the item, or why there is none (the failure kind, should it be the last)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One item's result from one completion."""

    status: OutcomeStatus
    answer: JSON = None
    reason: str = ""

    @classmethod
    def ok(cls, answer: JSON) -> Outcome:
        return cls("ok", answer)

    @classmethod
    def missing(cls, reason: str = "no answer for this item") -> Outcome:
        return cls(FailureKind.MISSING, None, reason)

    @classmethod
    def invalid(cls, reason: str) -> Outcome:
        return cls(FailureKind.INVALID, None, reason)


ResultStatus = Literal["ok", "failed", "stopped"]
"""A record's status in the output: answered, failed (see ``error_kind``), or not answered yet."""

IdValue = str | int | float | bool
"""A record's id: the JSON value it had in the input (a number stays a number)."""


@dataclass(frozen=True, slots=True)
class Result:
    """The final state of one record, as written to the output."""

    index: int
    id: IdValue
    """The record's id as its JSON value (a string, or the number it was), or its line number."""
    status: ResultStatus
    """``stopped``: the job stopped (budget, auth, interrupt) before the record was answered."""
    answer: JSON = None
    error: str = ""
    error_kind: str = ""
    """A ``FailureKind`` value, as a plain string (``""`` when answered)."""
    attempts: int = 0
