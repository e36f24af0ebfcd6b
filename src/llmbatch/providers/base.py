"""The provider interface and its registry.

A provider turns a provider-neutral ``Request`` into a ``Completion`` and
translates every SDK or transport error into llmbatch's exception tree at
this edge, so nothing past it knows which SDK was used. Capabilities are
class attributes; the runner reads them instead of checking names.

A provider with ``supports_batch`` also runs packs through its batch API
(``--mode batch``, ``_batch.BatchRunner``): ``batch_line`` renders one line,
``submit_batch`` uploads lines and returns the provider's batch id,
``poll_batch`` reports its state, ``batch_results`` downloads what it
answered, joined by the caller on ``custom_id`` (results come in any order).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .._exceptions import (
    AuthenticationError,
    BadRequest,
    FatalError,
    ProviderError,
    ServerError,
    UsageError,
)
from .._types import Completion, Request

__all__ = [
    "PROVIDERS",
    "BatchLimits",
    "BatchResult",
    "BatchStatus",
    "Provider",
    "ProviderConfig",
    "api_key_or_placeholder",
    "create_provider",
    "register",
    "scrub",
    "status_error",
]


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


class Provider(ABC):
    """One backend. Use as ``async with provider:`` or call ``aclose()``."""

    name: ClassVar[str] = "custom"
    """Set by @register; an unregistered provider (a test double, a plug-in) is "custom"."""
    supports_json_schema: ClassVar[bool] = False
    supports_tools: ClassVar[bool] = False
    context_tokens: ClassVar[int] = 128_000
    warm_up_first: ClassVar[bool] = False
    """Send one request alone before fanning out (it creates the provider's prompt-cache entry)."""
    cache_min_prefix: ClassVar[int | None] = None
    """Tokens from which the provider caches a prompt's prefix by itself (OpenAI: 1,024; servers
    with prefix caching, such as vLLM or llama.cpp, gain from a warm-up too): a job whose shared
    prefix reaches it is warmed up as with ``warm_up_first``."""
    cache_reads_count_toward_limit: ClassVar[bool] = True
    """False where cached input is not charged against the input-token limit (Anthropic)."""
    refunds_unused_output: ClassVar[bool] = False
    """True where the provider's token limit counts actual output, not ``max_tokens``."""
    billed: ClassVar[bool] = True
    """False for backends that cost nothing per token (a local model)."""

    model: str

    @property
    def default_pack(self) -> str:
        """The pack format to use when none is chosen: the most constrained one available."""
        if self.supports_json_schema:
            return "json"
        if self.supports_tools:
            return "tools"
        return "numbered"

    @property
    def endpoint(self) -> str:
        """Where requests go (part of the cache key); never contains a secret."""
        return self.name

    async def start(self) -> None:
        """Open connections or start servers; called once before the first request."""

    @abstractmethod
    async def complete(self, request: Request) -> Completion:
        """Send one request; raise a ``ProviderError`` subclass on failure."""

    async def aclose(self) -> None:
        """Release connections."""

    # -- the batch API (optional: ``supports_batch``) ----------------------------------

    supports_batch: ClassVar[bool] = False
    batch_limits: ClassVar[BatchLimits] = BatchLimits(max_requests=50_000, max_bytes=200_000_000)

    def batch_line(self, custom_id: str, request: Request) -> dict[str, Any]:
        """The JSON object of one batch line (its size counts against ``batch_limits``)."""
        raise UsageError(f"provider {self.name} has no batch API; use --mode sync")

    async def submit_batch(self, lines: Sequence[tuple[str, Request]]) -> str:
        """Submit (custom_id, request) lines as one batch; returns the provider's batch id."""
        raise UsageError(f"provider {self.name} has no batch API; use --mode sync")

    async def poll_batch(self, batch_id: str) -> BatchStatus:
        """The batch's state now."""
        raise UsageError(f"provider {self.name} has no batch API; use --mode sync")

    async def batch_results(self, batch_id: str) -> list[BatchResult]:
        """Every line's result of an ended batch, in the provider's order (not the input's).

        A line with no result at all (a batch that failed validation) is simply absent.
        """
        raise UsageError(f"provider {self.name} has no batch API; use --mode sync")

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


def scrub(message: str, secret: str | None) -> str:
    """An SDK's error message as one line of at most 500 characters, the API key masked."""
    message = " ".join(message.split())[:500]
    return message.replace(secret, "***") if secret else message


def status_error(status: int, message: str, *, headers: dict[str, str], key_env: str) -> ProviderError:
    """The llmbatch error for an HTTP error status; 429 and spend caps, which differ by
    provider, are mapped by the provider before it calls this."""
    if status in (401, 403):
        return AuthenticationError(
            f"{message} — check the API key ({key_env} or --api-key) and its permissions",
            status=status,
            headers=headers,
        )
    if status == 404:
        return FatalError(f"{message} — check --model and --base-url", status=status)
    if status in (400, 413, 422):
        return BadRequest(message, status=status, headers=headers)
    if status >= 500 or status in (408, 409):
        return ServerError(message, status=status, headers=headers)
    return ProviderError(message, status=status, headers=headers)


PROVIDERS: dict[str, Callable[[ProviderConfig], Provider]] = {}

P = TypeVar("P", bound=type[Provider])


def register(name: str) -> Callable[[P], P]:
    """Class decorator: make a provider available as ``--provider NAME``."""

    def add(cls: P) -> P:
        cls.name = name
        PROVIDERS[name] = cls
        return cls

    return add


def create_provider(name: str, config: ProviderConfig) -> Provider:
    from . import load_builtin

    load_builtin()
    try:
        factory = PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise UsageError(f"unknown provider {name!r}; choose from {known}") from None
    return factory(config)
