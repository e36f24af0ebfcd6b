"""llmbatch: run one LLM task over every record of a dataset — packed, parallel,
inside the provider's limits, resumable, and with every record accounted for.

>>> import llmbatch
>>> task = llmbatch.Task(instructions="Classify the review.", input="{text}", output="text")
"""

from __future__ import annotations

from ._api import RunResult, aiter_results, arun, iter_results, run
from ._engine.policy import RetryPolicy
from ._exceptions import (
    AuthenticationError,
    BadRequest,
    BatchLineLost,
    BudgetReached,
    CapacityUnavailable,
    ConnectionFailed,
    EndpointUnreachable,
    FatalError,
    ItemError,
    JobStopped,
    LLMBatchError,
    NotAnAPI,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RequestTimeout,
    RetryableError,
    ServerError,
    UnknownProviderError,
    UsageError,
)
from ._jobs.job import JobResult, JobSpec, run_job
from ._metrics import Metrics
from ._options import RunOptions
from ._pack import PACKERS
from ._pricing import Price, PriceTable
from ._task import Task
from ._types import Completion, Item, Outcome, Request, Result, Usage
from .providers import PROVIDERS, Capabilities, Provider, ProviderConfig, create_provider

__version__ = "0.1.0"

__all__ = [
    "PACKERS",
    "PROVIDERS",
    "AuthenticationError",
    "BadRequest",
    "BatchLineLost",
    "BudgetReached",
    "Capabilities",
    "CapacityUnavailable",
    "Completion",
    "ConnectionFailed",
    "EndpointUnreachable",
    "FatalError",
    "Item",
    "ItemError",
    "JobResult",
    "JobSpec",
    "JobStopped",
    "LLMBatchError",
    "Metrics",
    "NotAnAPI",
    "Outcome",
    "Price",
    "PriceTable",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "QuotaExhausted",
    "RateLimited",
    "Request",
    "RequestTimeout",
    "Result",
    "RetryPolicy",
    "RetryableError",
    "RunOptions",
    "RunResult",
    "ServerError",
    "Task",
    "UnknownProviderError",
    "Usage",
    "UsageError",
    "__version__",
    "aiter_results",
    "arun",
    "create_provider",
    "iter_results",
    "run",
    "run_job",
]
