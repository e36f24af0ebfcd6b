"""Which runner serves a job's ``--mode``, and how flex's stragglers reach the batch API.

sync   → ``Runner``: requests now, at the provider's default tier
flex   → ``Runner`` asking for the flex tier (``Request.service_tier``); records that
         keep meeting "resource unavailable" past ``--flex-deadline`` take
         ``--flex-fallback``: the default tier (``sync``), the batch API (``batch``:
         failed as ``unavailable`` by the runner, then sent here by a ``BatchRunner``),
         or failed (``fail``)
batch  → ``BatchRunner``: the provider's batch API
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from .._engine.batch import BatchRunner, submitted_batch_positions
from .._engine.runner import Runner
from .._exceptions import UsageError
from .._metrics import Metrics
from .._options import RunOptions
from .._pricing import Price
from .._store.cache import ResultCache
from .._store.job import ItemUpdate, JobStore
from .._task import Task
from .._types import FailureKind
from ..providers.base import Provider, batch_api

__all__ = ["check_mode", "flex_stragglers_to_batch", "make_runner", "open_batches_notice"]

Listener = Callable[[Sequence[ItemUpdate]], None]


def check_mode(options: RunOptions, provider: Provider) -> None:
    """Refuse a mode the provider cannot serve, before anything is sent."""
    if options.mode == "batch" or _flex_to_batch(options):
        batch_api(provider)
    if options.mode == "flex" and not provider.capabilities.flex:
        raise UsageError(
            f"--mode flex needs a provider with a flex tier (openai); {provider.name} has none: "
            "use --mode batch for its discount, or --mode sync"
        )


def make_runner(
    task: Task,
    options: RunOptions,
    provider: Provider,
    store: JobStore,
    *,
    price: Price | None,
    metrics: Metrics | None,
    cache: ResultCache | None,
    on_settled: Listener | None,
) -> Runner | BatchRunner:
    """The runner of ``options.mode``."""
    if options.mode == "batch":
        return BatchRunner(
            task,
            provider,
            store,
            options,
            price=price,
            metrics=metrics,
            cache=cache,
            on_settled=on_settled,
            poll_interval=options.poll_interval,
        )
    if options.mode not in ("sync", "flex"):
        raise UsageError(f"unknown mode {options.mode!r}; choose sync, flex or batch")
    return Runner(
        task,
        provider,
        store,
        options,
        price=price,
        metrics=metrics,
        cache=cache,
        on_settled=on_settled,
        # Flex stragglers an earlier run moved to the batch API are collected there, after.
        exclude=submitted_batch_positions(store) if _flex_to_batch(options) else (),
    )


async def flex_stragglers_to_batch(
    task: Task,
    options: RunOptions,
    provider: Provider,
    store: JobStore,
    *,
    price: Price | None,
    metrics: Metrics,
    cache: ResultCache | None,
    on_settled: Listener | None,
    notify: Callable[[str], None] | None,
) -> Metrics:
    """``--flex-fallback batch``, after the flex run: the records flex had no capacity for
    past ``--flex-deadline``, and the batches an earlier run left open, through the batch API
    (the same discount, results within 24 h)."""
    if not _flex_to_batch(options):
        return metrics
    moved = store.retry_failed((FailureKind.UNAVAILABLE,)).get(FailureKind.UNAVAILABLE, 0)
    if not moved and not store.open_batches():
        return metrics
    if moved and notify is not None:
        notify(
            f"flex had no capacity for {moved:,} records for longer than --flex-deadline "
            f"({options.policy.flex_deadline:g} s): sending them through the batch API (the same "
            "half price, results within 24 h; if stopped, the same command re-attaches to it)"
        )
    runner = make_runner(
        task,
        dataclasses.replace(options, mode="batch"),
        provider,
        store,
        price=price,
        metrics=metrics,
        cache=cache,
        on_settled=on_settled,
    )
    return await runner.run()


def open_batches_notice(store: JobStore, options: RunOptions) -> str | None:
    """A sync run over a job whose batch-mode run left batches unfinished pays for their items twice."""
    if options.mode == "batch" or _flex_to_batch(options):
        return None  # collected by this run
    waiting = store.open_batches()
    if not waiting:
        return None
    return (
        f"{len(waiting)} provider batch(es) of an earlier --mode batch run are still open; their items "
        "are sent again now (run with --mode batch instead to collect them)"
    )


def _flex_to_batch(options: RunOptions) -> bool:
    return options.mode == "flex" and options.policy.flex_fallback == "batch"
