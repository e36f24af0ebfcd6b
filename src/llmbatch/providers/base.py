"""The provider interface and its registry.

A provider turns a provider-neutral ``Request`` into a ``Completion`` and
translates every SDK or transport error into llmbatch's exception tree at
this edge, so nothing past it knows which SDK was used. What it can do is one
``Capabilities`` value; the engine reads it instead of checking names.

A provider that implements ``BatchAPI`` also runs packs through its batch API
(``--mode batch``, ``_engine.batch.BatchRunner``): ``batch_line`` renders one line,
``submit_batch`` uploads lines and returns the provider's batch id,
``poll_batch`` reports its state, ``batch_results`` downloads what it
answered, joined by the caller on ``custom_id`` (results come in any order).

Shared here so that every provider does them the same way, once: ``deadline``
(``--timeout`` bounds a whole request, not each read), ``scrub`` (provider text in
an error is short and holds no part of the key), ``json_body`` (a 200 that is not
JSON is a clear error), and the checks of a task's ``[params]`` and sampling
parameters against what the provider (``accepted_params``) and the model
(``ModelTraits`` from the model table) take.

Why one module: it is what every provider imports: the interface, the registry, the
capability defaults, the ``BatchAPI`` Protocol and the one status-to-error mapping.
Split, each provider would import from four places to say what it is.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol, TypeVar, runtime_checkable

from .._exceptions import (
    AuthenticationError,
    BadRequest,
    FatalError,
    NotAnAPI,
    ProviderError,
    RequestTimeout,
    ServerError,
    UnknownProviderError,
    UsageError,
)
from .._pricing import ModelTraits
from .._types import Capabilities, Completion, Request

__all__ = [
    "DEFAULT_TEMPERATURE",
    "MAX_ERROR_CHARS",
    "NUMBER",
    "PROVIDERS",
    "TABLE",
    "TEXT",
    "WHOLE",
    "BatchAPI",
    "BatchLimits",
    "BatchResult",
    "BatchStatus",
    "Capabilities",
    "Param",
    "Provider",
    "ProviderConfig",
    "api_key_or_placeholder",
    "batch_api",
    "check_sampling",
    "create_provider",
    "deadline",
    "describe_json",
    "json_body",
    "json_count",
    "register",
    "scrub",
    "status_error",
    "transfer_time",
]

DEFAULT_TEMPERATURE: Final = 0.0
"""Sent when the task sets none, to a model that takes one: the same answer for the same
item (classification, extraction) is what a batch job wants. Never sent to a reasoning model."""
SAMPLING: Final = ("temperature", "top_p")
"""The sampling parameters that some models reject (``ModelTraits.sampling``)."""


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """Options every provider understands; ``extra`` holds provider-specific ones.

    ``api_key`` is kept out of ``repr`` so that it never reaches a log line.
    """

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 120.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """The most one provider batch may hold: lines, and bytes of the lines as sent."""

    max_requests: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """A submitted batch as last seen: ``status`` is the provider's own word for it.

    ``ended``: no line will change any more, the results can be downloaded
    (completed, expired, canceled or failed as a whole — ``message`` says why).
    """

    id: str
    status: str
    ended: bool
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    message: str = ""


BatchResult = tuple[str, Completion | ProviderError]
"""One line of a batch's results: its ``custom_id`` and the completion or the line's error."""


@dataclass(frozen=True, slots=True)
class Param:
    """One ``[params]`` entry a provider takes: the JSON types its value may have, and their name."""

    types: tuple[type, ...]
    kind: str

    def accepts(self, value: Any) -> bool:
        # TOML's true is an int to isinstance; a seed of true is a mistake, not 1.
        return isinstance(value, self.types) and (bool in self.types or not isinstance(value, bool))


NUMBER: Final = Param((int, float), "a number")
WHOLE: Final = Param((int,), "a whole number")
TEXT: Final = Param((str,), "a string")
TABLE: Final = Param((dict,), "a table")


@runtime_checkable
class BatchAPI(Protocol):
    """A provider's batch API (``--mode batch``, ``_engine.batch.BatchRunner``), beside ``complete``.

    A provider opts in by having these members; one without them is refused batch mode
    with a usage error before anything starts (``batch_api``).
    """

    name: str
    batch_limits: BatchLimits

    def batch_line(self, custom_id: str, request: Request) -> dict[str, Any]:
        """The JSON object of one batch line (its size counts against ``batch_limits``)."""

    async def submit_batch(self, lines: Sequence[tuple[str, Request]]) -> str:
        """Submit (custom_id, request) lines as one batch; returns the provider's batch id."""

    async def poll_batch(self, batch_id: str) -> BatchStatus:
        """The batch's state now."""

    async def batch_results(self, batch_id: str) -> list[BatchResult]:
        """Every line's result of an ended batch, in the provider's order (not the input's).

        A line with no result at all (a batch that failed validation) is simply absent.
        """


def batch_api(provider: Provider) -> BatchAPI:
    """``provider`` as its batch API; a usage error when it has none."""
    if not isinstance(provider, BatchAPI):
        raise UsageError(f"provider {provider.name} has no batch API; use --mode sync")
    return provider


class Provider(ABC):
    """One backend. Use as ``async with provider:`` or call ``aclose()``."""

    name: ClassVar[str] = "custom"
    """Set by @register; an unregistered provider (a test double, a plug-in) is "custom"."""
    capabilities: Capabilities = Capabilities()
    """What this backend can carry and how its limits count; one value per provider class,
    replaced on an instance where its configuration changes it."""
    accepted_params: ClassVar[Mapping[str, Param]] = {}
    """The task ``[params]`` this provider passes through to the request, by name."""

    model: str

    @property
    def default_pack(self) -> str:
        """The pack format to use when none is chosen: the most constrained one available."""
        if self.capabilities.json_schema:
            return "json"
        if self.capabilities.tools:
            return "tools"
        return "numbered"

    @property
    def endpoint(self) -> str:
        """Where requests go (part of the cache key); never contains a secret."""
        return self.name

    async def start(self) -> None:
        """Open connections or start servers; called once before the first request."""

    def check_params(self, params: Mapping[str, Any]) -> None:
        """UsageError for a ``[params]`` entry this provider does not take, or of the wrong type.

        Called as each request is rendered, before anything is sent: a few dict lookups.
        """
        for name, value in params.items():
            spec = self.accepted_params.get(name)
            if spec is None:
                accepted = ", ".join(sorted(self.accepted_params)) or "no params"
                raise UsageError(
                    f"provider {self.name} does not take params.{name}; it takes {accepted}: "
                    "remove it from the task's [params]"
                )
            if not spec.accepts(value):
                raise UsageError(f"params.{name} must be {spec.kind} for provider {self.name}")

    @abstractmethod
    async def complete(self, request: Request) -> Completion:
        """Send one request; raise a ``ProviderError`` subclass on failure."""

    async def aclose(self) -> None:
        """Release connections."""

    @property
    def supports_batch(self) -> bool:
        """Whether this provider also has a batch API (implements ``BatchAPI``)."""
        return isinstance(self, BatchAPI)

    async def __aenter__(self) -> Provider:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def api_key_or_placeholder(api_key: str | None, base_url: str | None, missing: str) -> str:
    """The key to send: the user's; a placeholder for a local endpoint (the SDKs insist on a
    key, local servers ignore it); or a UsageError saying ``missing`` for the hosted API."""
    if api_key:
        return api_key
    if base_url is None:
        raise UsageError(missing)
    return "not-needed"


MAX_ERROR_CHARS: Final = 300
"""Provider text kept in an error: the reason fits, an HTML page or a stack trace does not."""
SECRET_RUN: Final = 8
"""Any run of this many characters of the key is masked: servers echo keys trimmed of their
``sk-`` prefix, cut short or split across lines, never only whole. Shorter runs are not
told apart from ordinary text (and reveal too little of a key to matter)."""


def scrub(message: str, secret: str | None, limit: int = MAX_ERROR_CHARS) -> str:
    """Provider text made fit for an error: one line of at most ``limit`` characters in
    which every run of ``SECRET_RUN`` or more characters of ``secret`` is masked.

    >>> scrub("key proj-4f9Qx81LmT0p is bad,\n  see docs", "sk-proj-4f9Qx81LmT0p")
    'key *** is bad, see docs'
    """
    # Whitespace is collapsed before masking, so a key split by a line break is two runs,
    # each masked; the slice first keeps an HTML page from costing a window per byte.
    text = " ".join(message[: limit * 4].split())
    if secret:
        text = _mask(text, secret)
    return text[:limit]


def _mask(text: str, secret: str) -> str:
    if len(secret) < SECRET_RUN:
        return text.replace(secret, "***")
    windows, n = _windows(secret), SECRET_RUN
    spans: list[list[int]] = []  # [start, end) of masked runs, merged as they overlap
    for i in range(len(text) - n + 1):
        if text[i : i + n] in windows:
            if spans and i <= spans[-1][1]:
                spans[-1][1] = i + n
            else:
                spans.append([i, i + n])
    if not spans:
        return text
    pieces, last = [], 0
    for start, end in spans:
        pieces += [text[last:start], "***"]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


@functools.lru_cache(maxsize=8)
def _windows(secret: str) -> frozenset[str]:
    """Every ``SECRET_RUN``-character substring of the key (one set per key, made once)."""
    return frozenset(secret[i : i + SECRET_RUN] for i in range(len(secret) - SECRET_RUN + 1))


@asynccontextmanager
async def deadline(seconds: float) -> AsyncIterator[None]:
    """Bound a whole request by ``seconds``: connecting, the headers and every byte of the body.

    The SDKs' own timeouts bound each read, so a server that sends its headers and then
    one byte a second holds a request for as long as it likes; this does not.

    >>> async with deadline(config.timeout):  # doctest: +SKIP
    ...     raw = await client.chat.completions.with_raw_response.create(**body)
    """
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        raise RequestTimeout(f"no complete answer within --timeout {seconds:g} s") from exc


TRANSFER_RATE: Final = 1_000_000
"""Bytes a second a batch file's upload or download is allowed, on top of ``--timeout``:
those grow with the batch (up to 200 MB), a chat request does not."""


def transfer_time(timeout: float, nbytes: int) -> float:
    """The deadline of a transfer of ``nbytes``: ``--timeout`` plus a second a megabyte."""
    return timeout + nbytes / TRANSFER_RATE


def json_body(text: str, content_type: str | None, secret: str | None) -> Any:
    """The JSON of a 200's body; a ServerError saying what came instead.

    A wrong ``--base-url`` or a proxy's sign-in page answers 200 with HTML: the error
    names the content type and quotes the start of the body (scrubbed). It is
    ``NotAnAPI``: whatever answered is not the API, so, as when nothing answers, it
    is retried without failing records and stops the job once it lasts
    (``--outage-timeout``). JSON that is cut short is a ``ServerError`` (retried).
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # Said with what the body was instead: the decoder's position tells a user nothing.
        kind = (content_type or "").split(";")[0].strip() or "no content type"
        if not text.strip():
            raise ServerError(
                f"the endpoint answered 200 with an empty body ({kind}): check --base-url"
            ) from None
        start = scrub(text, secret, limit=80)
        if kind.endswith("json"):
            raise ServerError(
                f"the endpoint returned JSON that is not valid (cut short?): the body starts {start!r}"
            ) from None
        raise NotAnAPI(
            f"the endpoint returned {kind}, not JSON: check --base-url (the body starts {start!r})"
        ) from None


def json_count(value: Any) -> int:
    """A count (of tokens, of a batch's lines) from a provider's JSON; 0 for anything that is not
    one (a server that sends null). Google's JSON writes 64-bit integers as strings of digits,
    which count too."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def describe_json(value: Any) -> str:
    """A few words on what a JSON value is, for an error about it (never its content)."""
    if isinstance(value, dict):
        keys = ", ".join(list(value)[:5])
        return f"an object with keys {keys}" if keys else "an empty object"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else f"a {type(value).__name__}"


def check_sampling(
    model: str, traits: ModelTraits, temperature: float | None, params: Mapping[str, Any]
) -> bool:
    """Whether ``model`` takes sampling parameters along with ``params``; a UsageError, before
    anything is sent, when the task sets one (``temperature``, ``top_p``) that it rejects."""
    if traits.takes_sampling(params):
        return True
    given = ["temperature"] if temperature is not None else []
    given += [name for name in SAMPLING if name in params]
    if given:
        name = given[0]
        if isinstance(traits.sampling, bool):
            raise UsageError(f"model {model} takes no {name}: remove params.{name} from the task file")
        needs = ", ".join(f"params.{key} = {json.dumps(value)}" for key, value in traits.sampling.items())
        raise UsageError(f"model {model} takes {name} only with {needs}: set that, or remove params.{name}")
    return False


def status_error(
    status: int | None, message: str, *, headers: dict[str, str] | None = None, key_env: str
) -> ProviderError:
    """The llmbatch error for an HTTP error status; 429 and spend caps, which differ by
    provider, are mapped by the provider before it calls this.

    A status with no rule here (418, 499, none at all) is an ``UnknownProviderError``:
    retried, as a failure that may pass, rather than guessed at.

    >>> type(status_error(503, "HTTP 503: busy", key_env="OPENAI_API_KEY")).__name__
    'ServerError'
    """
    if status in (401, 403):
        return AuthenticationError(
            f"{message} — check the API key ({key_env} or --api-key) and its permissions",
            status=status,
            headers=headers,
        )
    if status == 404:
        return FatalError(f"{message} — check --model and --base-url", status=status, headers=headers)
    if status in (400, 413, 422):
        return BadRequest(message, status=status, headers=headers)
    if status is not None and (status >= 500 or status in (408, 409)):
        return ServerError(message, status=status, headers=headers)
    return UnknownProviderError(message, status=status, headers=headers)


PROVIDERS: dict[str, Callable[[ProviderConfig], Provider]] = {}

P = TypeVar("P", bound=type[Provider])


def register(name: str) -> Callable[[P], P]:
    """Class decorator: make a provider available as ``--provider NAME``."""

    def add(cls: P) -> P:
        cls.name = name
        PROVIDERS[name] = cls
        return cls

    return add


# Built-in providers, imported on first use so that an optional dependency
# (llama-cpp-python, anthropic) is only needed by the provider that uses it.
_BUILTIN = ("openai", "anthropic", "gemini", "sim", "local")


def load_builtin() -> None:
    """Register every built-in provider (each module registers itself on import)."""
    for module in _BUILTIN:
        importlib.import_module(f"{__package__}.{module}")


def create_provider(name: str, config: ProviderConfig) -> Provider:
    load_builtin()
    try:
        factory = PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise UsageError(f"unknown provider {name!r}; choose from {known}") from None
    return factory(config)
