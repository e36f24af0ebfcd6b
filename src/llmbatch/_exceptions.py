"""llmbatch's exception hierarchy.

Errors from SDKs and HTTP libraries are translated into these at the provider
edge (``providers/``), so the policy and the runner reason about one tree::

    LLMBatchError
    ├── UsageError                 bad options, task file or input file (exit 2)
    ├── BudgetReached              --max-cost would be passed: stopped, resumable (exit 4)
    ├── JobStopped                 the job store or output cannot be written: stopped, resumable (exit 4)
    ├── ItemError                  one record cannot be processed (a failed row)
    └── ProviderError              a request failed; ``status`` and ``kind`` say how
        ├── RetryableError         try again later, possibly smaller
        │   ├── RateLimited        429 with a retry-after: pause every sender
        │   ├── RequestTimeout     no answer within --timeout
        │   ├── ConnectionFailed   could not reach the endpoint
        │   │   └── NotAnAPI       it answered, but not as the API does (an HTML page, a proxy)
        │   ├── ServerError        5xx, 529 overloaded
        │   └── BatchLineLost      a batch-API line the provider never ran (expired, canceled)
        ├── BadRequest             400: something in the pack is rejected; split it
        └── FatalError             nothing sent now can succeed: stop the job
            ├── AuthenticationError   401, 403
            ├── QuotaExhausted        429 insufficient_quota / spend cap
            └── EndpointUnreachable   connection failures for longer than the outage limit

Messages say what to do next and never contain API keys.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "BatchLineLost",
    "BudgetReached",
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
    "UsageError",
]


class LLMBatchError(Exception):
    """Base of every error llmbatch raises on purpose."""

    exit_code = 1
    rows_written: int | None = None
    """Set when a stopping job still wrote its output (answers so far, ``stopped`` rows for the rest)."""


class UsageError(LLMBatchError):
    """The command, options, task file or input cannot be used as given."""

    exit_code = 2


class BudgetReached(LLMBatchError):
    """Sending more would pass the budget (``--max-cost``); state is saved, resumable."""

    exit_code = 4


class JobStopped(LLMBatchError):
    """The job cannot go on here (its store or output cannot be written); state saved, resumable."""

    exit_code = 4


class ItemError(LLMBatchError):
    """One record cannot be processed; it becomes a failed row with this reason."""

    def __init__(self, message: str, *, kind: str = "input") -> None:
        super().__init__(message)
        self.kind = kind


class ProviderError(LLMBatchError):
    """A request to the provider failed.

    ``kind`` is a short stable name used in metrics and failed rows
    (``rate_limited``, ``timeout``, ``server_error``...).
    """

    kind = "provider_error"

    def __init__(
        self, message: str, *, status: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        # Rate-limit headers of the failed response, so a 429 corrects the limiter too.
        self.headers = headers or {}


class RetryableError(ProviderError):
    """The same request may succeed later."""

    kind = "retryable"


class RateLimited(RetryableError):
    """429 rate limit: every sender waits ``retry_after`` seconds (when known)."""

    kind = "rate_limited"

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


class RequestTimeout(RetryableError):
    kind = "timeout"


class ConnectionFailed(RetryableError):
    kind = "connection"


class NotAnAPI(ConnectionFailed):
    """A 200 that is not the API's answer (an HTML login page, a wrong --base-url): as good as
    unreachable — retried, never failing records, and stopping the job if it lasts."""

    kind = "not_api"


class ServerError(RetryableError):
    kind = "server_error"


class BatchLineLost(RetryableError):
    """A line of a provider batch that was never run: the batch expired or was canceled.

    ``kind`` is ``expired`` or ``canceled``; not the items' fault, so it is retried.
    """

    kind = "expired"

    def __init__(self, message: str, *, kind: str = "expired") -> None:
        super().__init__(message)
        self.kind = kind


class BadRequest(ProviderError):
    """400: the provider rejected the request; split the pack to find the item."""

    kind = "bad_request"


class FatalError(ProviderError):
    """Nothing sent now can succeed; the job stops, state saved, resumable."""

    kind = "fatal"
    exit_code = 4


class AuthenticationError(FatalError):
    kind = "auth"


class QuotaExhausted(FatalError):
    kind = "quota"


class EndpointUnreachable(FatalError):
    """Every request failed to connect for longer than the outage limit: stop, do not fail records."""

    kind = "unreachable"
