"""A whole job: open the store, ingest once, run what is pending, write the output.

Re-running the same command with the same job dir resumes: finished items are
not sent again, items that were in flight when the process died are still
``pending`` and are sent again, items that failed for reasons that may pass
(timeouts, server errors, missing or invalid answers) are asked again, and the
output is rebuilt from the store. When the task, provider, model or input
(by content: a file, stdin or records from Python) changed since the job
started, its stored answers no longer apply and the job starts over (saying so).

One process runs a job at a time (``_store.lock``). The output is written on every
exit — finished, stopped by the budget or the provider, or interrupted — with
a ``stopped`` row for each record not answered yet.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._engine.policy import MAY_PASS
from .._exceptions import BudgetReached, JobStopped, LLMBatchError, UsageError
from .._io import Record, open_reader, open_writer
from .._metrics import Metrics
from .._options import RunOptions
from .._pricing import Price, PriceTable, price_for
from .._store.cache import ResultCache
from .._store.ingest import ingest
from .._store.job import ItemUpdate, JobStore
from .._store.lock import JobLock
from .._task import Task
from .._types import FailureKind, ItemStatus
from ..providers.base import Provider
from .modes import check_mode, flex_stragglers_to_batch, make_runner, open_batches_notice

__all__ = ["JobResult", "JobSpec", "default_job_dir", "job_name", "run_job"]


def job_name(input_path: str | Path, task: Task) -> str:
    """``<input name>-<task name>`` (``stdin-<task name>`` for ``-``): what a job's directory
    and its default output file are called."""
    stem = "stdin" if str(input_path) == "-" else Path(input_path).stem
    return f"{stem}-{task.name}"


def default_job_dir(input_path: str | Path, task: Task) -> Path:
    """``.llmbatch/<input name>-<task name>`` in the current directory."""
    return Path(".llmbatch") / job_name(input_path, task)


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
        return self.counts.get(ItemStatus.FAILED, 0) == 0 and self.counts.get(ItemStatus.PENDING, 0) == 0


def _identity(spec: JobSpec, provider: Provider) -> dict[str, Any]:
    """What a job's stored answers depend on besides its input; a change means starting over.

    The input itself is compared by content when it is ingested (``_store.ingest``).
    """
    return {
        "task": spec.task.fingerprint,
        "endpoint": provider.endpoint,
        "model": " > ".join(spec.task.models) if spec.task.models else provider.model,
    }


def _input_stat(spec: JobSpec) -> dict[str, int] | None:
    """A regular file's size, mtime and inode: when all are unchanged its content is taken as read."""
    if spec.records is not None or str(spec.input) == "-":
        return None
    try:
        stat = Path(spec.input).stat()
    except OSError:
        return None
    if not Path(spec.input).is_file():
        return None  # a FIFO or /dev/stdin: read it to know what it holds
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}


def _remove_store(job_dir: Path) -> None:
    """Delete the job's own files only: a job dir may be a folder the user also uses."""
    for name in ("job.sqlite", "job.sqlite-wal", "job.sqlite-shm"):
        (job_dir / name).unlink(missing_ok=True)


def open_job_store(spec: JobSpec, provider: Provider, notices: list[str]) -> JobStore:
    """Open (or create) the job's store, starting over when the task, endpoint or model changed.

    The caller holds the job's lock.
    """
    identity = _identity(spec, provider)
    if spec.restart:
        _remove_store(spec.job_dir)
    store = JobStore.open(spec.job_dir)
    stored = store.get_meta("identity")
    if stored is not None and any(stored.get(k) != v for k, v in identity.items()):
        changed = ", ".join(k for k in identity if stored.get(k) != identity[k])
        notices.append(f"{changed} changed since the job in {spec.job_dir} started: starting over")
        store.start_over()  # as for another input: the rows go, the file and its schema stay
    store.set_meta("identity", identity)
    return store


def _ingest_input(spec: JobSpec, store: JobStore, notices: list[str]) -> None:
    """Read the input into the store (a new job), or check it is the job's (a resumed one)."""
    stat = _input_stat(spec)
    reader: Iterable[Record] = (
        open_reader(spec.input, spec.input_format)
        if spec.records is None
        else (Record(i, i, dict(fields)) for i, fields in enumerate(spec.records))
    )
    unchanged = stat is not None and store.get_meta("input_stat") == stat
    identity = store.get_meta("identity")
    report = ingest(store, spec.task, reader, unchanged=unchanged)
    if report.started_over:
        notices.append(f"the input is not the one the job in {spec.job_dir} started with: starting over")
        store.set_meta("identity", identity)
    elif report.resumed:
        notices.append(f"resuming the job in {spec.job_dir}")
    notices.extend(report.notices)
    store.set_meta("input_stat", stat)


def _retry_failed(spec: JobSpec, store: JobStore, notices: list[str]) -> None:
    """A re-run asks again what failed for reasons that may pass (``--no-retry-failed``: not)."""
    if not spec.options.retry_failed:
        return
    again = store.retry_failed(MAY_PASS)
    if again:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(again.items()))
        notices.append(
            f"asking again {sum(again.values()):,} records that failed for reasons that may pass ({kinds})"
        )


def _price_of(spec: JobSpec, provider: Provider) -> Price | None:
    return price_for(provider.model, billed=provider.capabilities.billed, prices=spec.prices)


ESCALATED_KINDS = (FailureKind.MISSING, FailureKind.INVALID, FailureKind.TRUNCATED)
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
            runner = make_runner(
                spec.task,
                spec.options,
                provider,
                store,
                price=_price_of(spec, provider),
                metrics=metrics,
                cache=cache,
                on_settled=on_settled,
            )
            return await runner.run()
        finally:
            if cache is not None:
                cache.close()


def _open_cache(spec: JobSpec, provider: Provider) -> ResultCache | None:
    if spec.cache_dir is None:
        return None
    return ResultCache.open(
        spec.cache_dir,
        endpoint=provider.endpoint,
        model=provider.model,
        task_fingerprint=spec.task.fingerprint,
    )


def check_paths(spec: JobSpec) -> None:
    """Refuse, before anything is sent, an input that is missing or an output that cannot be written."""
    if spec.records is None and str(spec.input) != "-" and not Path(spec.input).exists():
        raise UsageError(f"input file {spec.input} not found")
    if spec.output is None or str(spec.output) == "-":
        return
    output = Path(spec.output)
    if spec.records is None and str(spec.input) != "-" and _same_file(Path(spec.input), output):
        raise UsageError(
            f"--out {output} is the input file: writing it would destroy the input; choose another"
        )
    if output.is_dir():
        raise UsageError(f"--out {output} is a folder: name a file")
    folder = output.parent
    if not folder.exists():
        raise UsageError(f"cannot write {output}: the folder {folder} does not exist")
    probe = folder / f".{output.name}.llmbatch-probe-{os.getpid()}"
    try:
        probe.open("w").close()
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            f"cannot write {output}: {exc.strerror or exc} (check the folder and the disk)"
        ) from exc


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


@contextmanager
def _store_errors(job_dir: Path) -> Iterator[None]:
    """A job store that cannot be written (full disk, read-only folder) stops the job, resumable."""
    try:
        yield
    except sqlite3.Error as exc:
        raise JobStopped(
            f"cannot write the job store in {job_dir}: {exc}; free space (or fix the folder), "
            "then run the same command to resume"
        ) from exc


def _why_stopped(exc: BaseException) -> str:
    """The ``error`` of the rows a stopped job did not answer: why, and how to go on."""
    if isinstance(exc, BudgetReached):
        return "not answered: the budget (--max-cost) was reached; run again with a larger --max-cost"
    if isinstance(exc, LLMBatchError):
        return f"not answered: the job stopped ({str(exc)[:200]}); run the same command to resume"
    return "not answered: the job was interrupted; run the same command to resume"


def _write_output(spec: JobSpec, store: JobStore, stopped: str = "") -> int:
    """Write every record's row; on a late failure say where the answers are and how to get them."""
    assert spec.output is not None
    try:
        return open_writer(spec.output, spec.task, spec.output_format).write(store.results(stopped))
    except OSError as exc:
        raise JobStopped(
            f"cannot write {spec.output}: {exc.strerror or exc}; the answers are kept in {spec.job_dir}: "
            "run the same command with another --out to write them (nothing is sent again)"
        ) from exc


async def run_job(
    spec: JobSpec,
    provider: Provider,
    metrics: Metrics | None = None,
    notify: Callable[[str], None] | None = None,
    on_settled: Callable[[Sequence[ItemUpdate]], None] | None = None,
    provider_for: Callable[[str], Provider] | None = None,
) -> JobResult:
    """Run a job to the end (or until it stops, which propagates with state saved and output written).

    ``notify`` hears each notice (resuming, starting over, duplicate ids) before
    the first request, so it is seen even when the job then stops or is interrupted.
    A second run on the same job dir while this one holds it raises ``UsageError``.
    """
    notices: list[str] = []
    # Before the provider starts: a local model would load only to be refused.
    check_mode(spec.options, provider)
    check_paths(spec)
    with JobLock.acquire(spec.job_dir), _store_errors(spec.job_dir):
        async with provider:
            store = open_job_store(spec, provider, notices)
            try:
                return await _run_open_job(
                    spec, provider, store, notices, metrics, notify, on_settled, provider_for
                )
            finally:
                store.close()


async def _run_open_job(
    spec: JobSpec,
    provider: Provider,
    store: JobStore,
    notices: list[str],
    metrics: Metrics | None,
    notify: Callable[[str], None] | None,
    on_settled: Callable[[Sequence[ItemUpdate]], None] | None,
    provider_for: Callable[[str], Provider] | None,
) -> JobResult:
    _ingest_input(spec, store, notices)
    _retry_failed(spec, store, notices)
    open_batches = open_batches_notice(store, spec.options)
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
    try:
        cache = _open_cache(spec, provider)
        try:
            runner = make_runner(
                spec.task,
                spec.options,
                provider,
                store,
                price=price,
                metrics=metrics,
                cache=cache,
                on_settled=on_settled,
            )
            result_metrics = await runner.run()
            result_metrics = await flex_stragglers_to_batch(
                spec.task,
                spec.options,
                provider,
                store,
                price=price,
                metrics=result_metrics,
                cache=cache,
                on_settled=on_settled,
                notify=notify,
            )
        finally:
            if cache is not None:
                cache.close()
        for model in spec.task.models[1:]:
            result_metrics = await _escalate(spec, store, model, provider_for, result_metrics, on_settled)
    except BaseException as exc:
        # Budget, provider stop, Ctrl-C, SIGTERM: what was paid for reaches the output too.
        if spec.output is None or isinstance(exc, UsageError | sqlite3.Error):
            raise
        try:
            rows = _write_output(spec, store, _why_stopped(exc))
        except JobStopped as unwritten:
            raise JobStopped(f"{exc} — and {unwritten}") from exc
        if isinstance(exc, LLMBatchError):
            exc.rows_written = rows
        raise
    rows = 0 if spec.output is None else _write_output(spec, store)
    return JobResult(result_metrics, store.counts(), rows, notices, spec.job_dir)
