"""llmbatch's exception hierarchy.

Errors from SDKs and HTTP libraries are translated into these at the provider
edge (``providers/``), so the policy and the runner reason about one tree::

    LLMBatchError
    ├── UsageError                 bad options, task file or input file (exit 2)
    ├── JobStopped                 the job cannot go on here: stopped, state saved, resumable (exit 4)
    │   └── BudgetReached          --max-cost would be passed
    ├── ItemError                  one record cannot be processed (a failed row)
    └── ProviderError              a request failed; ``status`` and ``kind`` say how
        ├── RetryableError         try again later, possibly smaller
        │   ├── RateLimited        429 with a retry-after: pause every sender
        │   ├── CapacityUnavailable  flex 429 "resource unavailable": not a limit; retry later
        │   ├── RequestTimeout     no answer within --timeout
        │   ├── ConnectionFailed   could not reach the endpoint
        │   │   └── NotAnAPI       it answered, but not as the API does (an HTML page, a proxy)
        │   ├── ServerError        5xx, 529 overloaded
        │   ├── BatchLineLost      a batch-API line the provider never ran (expired, canceled)
        │   └── UnknownProviderError  a status or SDK error with no meaning of its own: retried
        ├── BadRequest             400: something in the pack is rejected; split it
        └── FatalError             nothing sent now can succeed: stop the job (exit 4)
            ├── AuthenticationError   401, 403
            ├── QuotaExhausted        429 insufficient_quota / spend cap
            └── EndpointUnreachable   connection failures for longer than the outage limit

``ProviderError`` itself is never raised: every failure a provider cannot place
is an ``UnknownProviderError``, so that "retry it" is a decision, not a fall-through.

The CLI prints one line, ``<label>: <message>``, and exits with ``exit_code``:
``label`` is ``stopped`` for the errors that stop a job (``JobStopped``,
``FatalError``), ``error`` for the rest.

Messages say what to do next and never contain API keys.
"""

from __future__ import annotations

from typing import ClassVar

from ._types import FailureKind

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "BatchLineLost",
    "BudgetReached",
    "CapacityUnavailable",
    "ConnectionFailed",
    "EndpointUnreachable",
    "FatalError",
    "ItemError",
    "JobStopped",
    "LLMBatchError",
    "NotAnAPI",
    "ProviderError",
    "QuotaExhausted",
    "RateLimited",
    "RequestTimeout",
    "RetryableError",
    "ServerError",
    "UnknownProviderError",
    "UsageError",
]


class LLMBatchError(Exception):
    """Base of every error llmbatch raises on purpose."""

    exit_code: ClassVar[int] = 1
    label: ClassVar[str] = "error"
    """The word the CLI prints before the message: ``error`` or ``stopped``."""
    rows_written: int | None = None
    """Set when a stopping job still wrote its output (answers so far, ``stopped`` rows for the rest)."""


class UsageError(LLMBatchError):
    """The command, options, task file or input cannot be used as given."""

    exit_code = 2


class JobStopped(LLMBatchError):
    """The job stopped for a reason of its own, not a provider's: its store or output cannot be
    written, a worker reported a stop (Ray), the budget. State is saved; the same command resumes.
    """

    exit_code = 4
    label = "stopped"


class BudgetReached(JobStopped):
    """Sending more would pass the budget (``--max-cost``); state is saved, resumable."""


class ItemError(LLMBatchError):
    """One record cannot be processed; it becomes a failed row with this reason.

    ``kind`` is the row's ``FailureKind``: ``input`` (the record), or ``too_large``.
    """

    def __init__(self, message: str, *, kind: str = FailureKind.INPUT) -> None:
        super().__init__(message)
        self.kind = kind


class ProviderError(LLMBatchError):
    """A request to the provider failed.

    ``kind`` is a short stable name used in metrics and failed rows
    (``rate_limited``, ``timeout``, ``server_error``...): a ``FailureKind``.
    """

    kind: str = FailureKind.PROVIDER_ERROR

    def __init__(
        self, message: str, *, status: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        # Rate-limit headers of the failed response, so a 429 corrects the limiter too.
        self.headers = headers or {}


class RetryableError(ProviderError):
    """The same request may succeed later."""

    kind: str = FailureKind.RETRYABLE  # str, not FailureKind: BatchLineLost takes its kind as given


class RateLimited(RetryableError):
    """429 rate limit: every sender waits ``retry_after`` seconds (when known)."""

    kind = FailureKind.RATE_LIMITED

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, status=status, headers=headers)
        self.retry_after = retry_after


class CapacityUnavailable(RetryableError):
    """The flex tier had no capacity for the request (OpenAI's 429 "Resource Unavailable",
    Groq's 498 ``capacity_exceeded``).

    Not a rate limit: nothing says the account sends too fast, so no sender pauses and the
    concurrency controller does not shrink; the pack is sent again after its own backoff,
    and items that keep meeting it past ``--flex-deadline`` take ``--flex-fallback``.
    """

    kind = FailureKind.UNAVAILABLE


class RequestTimeout(RetryableError):
    kind = FailureKind.TIMEOUT


class ConnectionFailed(RetryableError):
    kind = FailureKind.CONNECTION


class NotAnAPI(ConnectionFailed):
    """A 200 that is not the API's answer (an HTML login page, a wrong --base-url): as good as
    unreachable — retried, never failing records, and stopping the job if it lasts."""

    kind = FailureKind.NOT_API


class ServerError(RetryableError):
    kind = FailureKind.SERVER_ERROR


class BatchLineLost(RetryableError):
    """A line of a provider batch that was never run: the batch expired or was canceled.

    ``kind`` is ``expired`` or ``canceled``; not the items' fault, so it is retried.
    """

    kind: str = FailureKind.EXPIRED

    def __init__(self, message: str, *, kind: str = FailureKind.EXPIRED) -> None:
        super().__init__(message)
        self.kind = kind


class UnknownProviderError(RetryableError):
    """A failure the provider edge cannot place: an HTTP status with no rule of its own (418,
    499...), or an SDK error that is not one of a request (a response of the wrong shape).

    Retried like any transient failure, its records failing only once ``max_transient`` is
    spent. ``kind`` stays ``provider_error``, the name such failures have always had in
    metrics and failed rows (a re-run asks them again: ``_engine.policy.MAY_PASS``).
    """

    kind = FailureKind.PROVIDER_ERROR


class BadRequest(ProviderError):
    """400: the provider rejected the request; split the pack to find the item."""

    kind = FailureKind.BAD_REQUEST


class FatalError(ProviderError):
    """Nothing sent now can succeed; the job stops, state saved, resumable."""

    kind = FailureKind.FATAL
    exit_code = 4
    label = "stopped"


class AuthenticationError(FatalError):
    kind = FailureKind.AUTH


class QuotaExhausted(FatalError):
    kind = FailureKind.QUOTA


class EndpointUnreachable(FatalError):
    """Every request failed to connect for longer than the outage limit: stop, do not fail records."""

    kind = FailureKind.UNREACHABLE
