"""How to run a job, as one value every front end builds and every engine reads: the CLI,
the Python API, tune, vote and the Ray engine all hand a ``RunOptions`` on, so none of them
imports it from the runner that consumes it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._engine.policy import RetryPolicy

__all__ = ["RunOptions"]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run a job (the CLI's options, minus the I/O paths)."""

    batch_size: int | None = None
    """Records per request; None sizes packs adaptively (start 5, up to max_batch_size)."""
    max_batch_size: int = 50
    concurrency: int | None = None
    """A cap on requests in flight; None: as many as the provider's limits and latency call for."""
    pack: str | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 120.0
    rpm: float | None = None
    tpm: float | None = None
    seed: int = 0
    max_cost: float | None = None
    """Stop before the projected spend (spent + requests in flight + the next one) passes this (USD)."""
    shuffle: bool = True
    """Place records in packs in a seeded random order (within a page of pending items),
    so position effects inside a pack do not fall on the same records every run."""
    mode: str = "sync"
    """``sync``: requests now; ``batch``: the provider's batch API (half price, results within 24 h)."""
    poll_interval: float = 5.0
    """Batch mode: seconds before a batch is first polled (then ×1.5 per poll, up to a minute)."""
    retry_failed: bool = True
    """A re-run asks again the records that failed for reasons that may pass (``_engine.policy.MAY_PASS``)."""
