"""A whole job: open the store, ingest once, run what is pending, write the output.

Re-running the same command with the same job dir resumes: finished items are
not sent again, items that were in flight when the process died are still
``pending`` and are sent again, and the output is rebuilt from the store.
When the task, provider, model or input changed since the job started, its
stored answers no longer apply and the job starts over (saying so).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._batch import BatchRunner
from ._cache import ResultCache
from ._exceptions import UsageError
from ._ingest import ingest
from ._io import Record, open_reader, open_writer
from ._metrics import Metrics
from ._pricing import Price, PriceTable
from ._runner import Runner, RunOptions
from ._store import ItemUpdate, JobStore
from ._task import Task
from .providers.base import Provider

__all__ = ["JobResult", "JobSpec", "default_job_dir", "run_job"]


def default_job_dir(input_path: str | Path, task: Task) -> Path:
    """``.llmbatch/<input name>-<task name>`` in the current directory."""
    stem = "stdin" if str(input_path) == "-" else Path(input_path).stem
    return Path(".llmbatch") / f"{stem}-{task.name}"


@dataclass(slots=True)
class JobSpec:
    task: Task
    input: str | Path
    output: str | Path | None
    job_dir: Path
    options: RunOptions = field(default_factory=RunOptions)
    prices: PriceTable | None = None
    restart: bool = False
    input_format: str | None = None
    output_format: str | None = None
    cache_dir: Path | None = None
    """Where the shared result cache lives; None disables it."""
    records: Iterable[Mapping[str, Any]] | None = None
    """Records given in memory (the Python API) instead of reading ``input``."""
    command: list[str] | None = None
    """The command line that runs this job (secrets removed), shown by ``status`` to resume."""


@dataclass(slots=True)
class JobResult:
    metrics: Metrics
    counts: dict[str, int]
    rows_written: int
    notices: list[str]
    job_dir: Path

    @property
    def all_ok(self) -> bool:
        return self.counts.get("failed", 0) == 0 and self.counts.get("pending", 0) == 0


def _identity(spec: JobSpec, provider: Provider) -> dict[str, Any]:
    """What a job's stored answers depend on; a change means starting over."""
    ident: dict[str, Any] = {
        "task": spec.task.fingerprint,
        "endpoint": provider.endpoint,
        "model": " > ".join(spec.task.models) if spec.task.models else provider.model,
        "input": str(spec.input),
    }
    if spec.records is None and str(spec.input) != "-":
        stat = Path(spec.input).stat()
        ident["input_size"] = stat.st_size
        ident["input_mtime_ns"] = stat.st_mtime_ns
    return ident


def _remove_store(job_dir: Path) -> None:
    """Delete the job's own files only: a job dir may be a folder the user also uses."""
    for name in ("job.sqlite", "job.sqlite-wal", "job.sqlite-shm"):
        (job_dir / name).unlink(missing_ok=True)


def open_job_store(spec: JobSpec, provider: Provider, notices: list[str]) -> JobStore:
    """Open (or create) the job's store, starting over when the job no longer matches."""
    identity = _identity(spec, provider)
    if spec.restart:
        _remove_store(spec.job_dir)
    store = JobStore.open(spec.job_dir)
    stored = store.get_meta("identity")
    if stored is not None and stored != identity:
        changed = ", ".join(k for k in identity if stored.get(k) != identity[k])
        notices.append(f"{changed} changed since the job in {spec.job_dir} started: starting over")
        store.close()
        _remove_store(spec.job_dir)
        store = JobStore.open(spec.job_dir)
    elif stored is not None:
        notices.append(f"resuming the job in {spec.job_dir}")
    store.set_meta("identity", identity)
    return store


def _price_of(spec: JobSpec, provider: Provider) -> Price | None:
    if not provider.billed:
        return Price(input=0.0, output=0.0)
    return spec.prices.get(provider.model) if spec.prices else None


ESCALATED_KINDS = ("missing", "invalid", "truncated")
"""Failures a stronger model may fix (not unreadable input, not a provider stop)."""


async def _escalate(
    spec: JobSpec,
    store: JobStore,
    model: str,
    provider_for: Callable[[str], Provider] | None,
    metrics: Metrics,
    on_settled: Callable[[Sequence[ItemUpdate]], None] | None,
) -> Metrics:
    """Run the next model of a cascade over what the previous ones could not answer."""
    if provider_for is None:
        raise UsageError("the task lists several models: a provider factory is needed (provider_for)")
    task = spec.task
    if not store.escalate(ESCALATED_KINDS, task.escalate_field, task.escalate_below):
        return metrics
    async with provider_for(model) as provider:
        cache = _open_cache(spec, provider)
        try:
            runner = _runner(spec, provider, store, _price_of(spec, provider), metrics, cache, on_settled)
            return await runner.run()
        finally:
            if cache is not None:
                cache.close()


def _runner(
    spec: JobSpec,
    provider: Provider,
    store: JobStore,
    price: Price | None,
    metrics: Metrics | None,
    cache: ResultCache | None,
    on_settled: Callable[[Sequence[ItemUpdate]], None] | None,
) -> Runner:
    """The runner of ``spec.options.mode``: ``sync`` requests, or the provider's ``batch`` API."""
    options = spec.options
    if options.mode == "batch":
        return BatchRunner(
            spec.task,
            provider,
            store,
            options,
            price=price,
            metrics=metrics,
            cache=cache,
            on_settled=on_settled,
            poll_interval=options.poll_interval,
        )
    if options.mode != "sync":
        raise UsageError(f"unknown mode {options.mode!r}; choose sync or batch")
    return Runner(
        spec.task, provider, store, options, price=price, metrics=metrics, cache=cache, on_settled=on_settled
    )


def _open_batches_notice(store: JobStore, spec: JobSpec) -> str | None:
    """A sync run over a job whose batch-mode run left batches unfinished pays for their items twice."""
    if spec.options.mode == "batch":
        return None
    waiting = store.open_batches()
    if not waiting:
        return None
    return (
        f"{len(waiting)} provider batch(es) of an earlier --mode batch run are still open; their items "
        "are sent again now (run with --mode batch instead to collect them)"
    )


def _open_cache(spec: JobSpec, provider: Provider) -> ResultCache | None:
    if spec.cache_dir is None:
        return None
    return ResultCache.open(
        spec.cache_dir,
        endpoint=provider.endpoint,
        model=provider.model,
        task_fingerprint=spec.task.fingerprint,
    )


async def run_job(
    spec: JobSpec,
    provider: Provider,
    metrics: Metrics | None = None,
    notify: Callable[[str], None] | None = None,
    on_settled: Callable[[Sequence[ItemUpdate]], None] | None = None,
    provider_for: Callable[[str], Provider] | None = None,
) -> JobResult:
    """Run a job to the end (or until a fatal error, which propagates with state saved).

    ``notify`` hears each notice (resuming, starting over, duplicate ids) before
    the first request, so it is seen even when the job then stops or is interrupted.
    """
    notices: list[str] = []
    if spec.options.mode == "batch" and not provider.supports_batch:
        # Before the provider starts: a local model would load only to be refused.
        raise UsageError(f"provider {provider.name} has no batch API; use --mode sync")
    async with provider:
        store = open_job_store(spec, provider, notices)
        try:
            reader: Iterable[Record] = (
                open_reader(spec.input, spec.input_format)
                if spec.records is None
                else (Record(i, i, dict(fields)) for i, fields in enumerate(spec.records))
            )
            notices.extend(ingest(store, spec.task, reader))
            open_batches = _open_batches_notice(store, spec)
            if open_batches is not None:
                notices.append(open_batches)
            if notify is not None:
                for notice in notices:
                    notify(notice)
            price = _price_of(spec, provider)
            if spec.command is not None:
                store.set_meta("command", spec.command)
                store.set_meta("cwd", str(Path.cwd()))
            if price is not None:
                store.set_meta("price", dataclasses.asdict(price))
            cache = _open_cache(spec, provider)
            try:
                runner = _runner(spec, provider, store, price, metrics, cache, on_settled)
                result_metrics = await runner.run()
            finally:
                if cache is not None:
                    cache.close()
            for model in spec.task.models[1:]:
                result_metrics = await _escalate(spec, store, model, provider_for, result_metrics, on_settled)
            rows = 0
            if spec.output is not None:
                rows = open_writer(spec.output, spec.task, spec.output_format).write(store.results())
            return JobResult(result_metrics, store.counts(), rows, notices, spec.job_dir)
        finally:
            store.close()
