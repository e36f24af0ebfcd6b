"""The Python API: ``llmbatch.run`` / ``arun`` and the streaming ``iter_results`` / ``aiter_results``.

    >>> import llmbatch
    >>> task = llmbatch.Task(instructions="Classify the review.", input="{text}", output="text")
    >>> result = llmbatch.run(task, [{"id": "a", "text": "Great!"}], provider="sim")
    >>> result.results[0].status
    'ok'

``run`` works in a notebook that already runs an event loop (it then runs the
job on a private loop in a worker thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ._cache import default_cache_dir
from ._ingest import record_id
from ._io import Record
from ._job import JobSpec, run_job
from ._pricing import PriceTable
from ._runner import RunOptions
from ._store import DONE, ItemUpdate, JobStore
from ._task import Task
from ._types import Result
from .providers import ProviderConfig, create_provider

__all__ = ["RunResult", "aiter_results", "arun", "iter_results", "run"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RunResult:
    """Every record's result, in input order, and the run's metrics."""

    results: list[Result]
    metrics: dict[str, Any]

    @property
    def answers(self) -> list[Any]:
        """The answers in input order (None for failed records)."""
        return [r.answer for r in self.results]


def _spec(
    task: Task,
    records: Iterable[Mapping[str, Any]],
    job_dir: str | Path | None,
    cache_dir: str | Path | bool | None,
    options: RunOptions,
) -> tuple[JobSpec, tempfile.TemporaryDirectory[str] | None]:
    scratch = None
    if job_dir is None:
        scratch = tempfile.TemporaryDirectory(prefix="llmbatch-")
        job_dir = scratch.name
    if cache_dir is True or cache_dir is None:
        cache: Path | None = default_cache_dir()
    elif cache_dir is False:
        cache = None
    else:
        cache = Path(cache_dir)
    spec = JobSpec(
        task=task,
        input="<records>",
        output=None,
        job_dir=Path(job_dir),
        options=options,
        prices=PriceTable.load(),
        cache_dir=cache,
        records=records,
    )
    return spec, scratch


def _provider(provider: str | None, provider_options: dict[str, Any]) -> Any:
    config = ProviderConfig(
        model=provider_options.pop("model", None),
        base_url=provider_options.pop("base_url", None),
        api_key=provider_options.pop("api_key", None),
        timeout=provider_options.pop("timeout", 120.0),
        extra=provider_options,
    )
    return create_provider(provider or "openai", config)


def _options(options: dict[str, Any]) -> tuple[RunOptions, dict[str, Any]]:
    """Split keyword options into RunOptions fields and provider options."""
    fields = set(RunOptions.__dataclass_fields__)
    run_options = RunOptions(**{k: v for k, v in options.items() if k in fields})
    return run_options, {k: v for k, v in options.items() if k not in fields}


def _results(job_dir: Path) -> list[Result]:
    store = JobStore.open(job_dir, readonly=True)
    try:
        return list(store.results())
    finally:
        store.close()


async def arun(
    task: Task,
    records: Iterable[Mapping[str, Any]],
    *,
    provider: str | None = "openai",
    job_dir: str | Path | None = None,
    cache_dir: str | Path | bool | None = None,
    **options: Any,
) -> RunResult:
    """Run ``task`` over ``records`` (dicts); results in input order.

    ``options`` are ``RunOptions`` fields (``batch_size``, ``concurrency``,
    ``max_cost``...) and provider options (``model``, ``base_url``, ``api_key``,
    ``timeout``; the rest goes to the provider as ``extra``). Without a
    ``job_dir`` the job lives in a temporary folder; ``cache_dir=False``
    disables the shared result cache.
    """
    run_options, provider_options = _options(options)
    spec, scratch = _spec(task, records, job_dir, cache_dir, run_options)
    try:
        job = await run_job(spec, _provider(provider, provider_options))
        return RunResult(_results(spec.job_dir), job.metrics.summary())
    finally:
        if scratch is not None:
            scratch.cleanup()


def run(task: Task, records: Iterable[Mapping[str, Any]], **options: Any) -> RunResult:
    """The synchronous form of ``arun`` (safe inside a running event loop, e.g. Jupyter)."""
    return _run_sync(arun(task, records, **options))


async def aiter_results(
    task: Task,
    records: Iterable[Mapping[str, Any]],
    *,
    provider: str | None = "openai",
    job_dir: str | Path | None = None,
    cache_dir: str | Path | bool | None = None,
    **options: Any,
) -> AsyncIterator[Result]:
    """Yield each record's result as soon as it is final (completion order, not input order)."""
    run_options, provider_options = _options(options)
    records = list(records)
    spec, scratch = _spec(task, records, job_dir, cache_dir, run_options)
    ids = [record_id(task, Record(i, i, dict(fields)))[0] for i, fields in enumerate(records)]
    settled: asyncio.Queue[Sequence[ItemUpdate]] = asyncio.Queue()
    job = asyncio.create_task(
        run_job(spec, _provider(provider, provider_options), on_settled=settled.put_nowait)
    )
    seen: set[int] = set()
    try:
        while not (job.done() and settled.empty()):
            getter = asyncio.ensure_future(settled.get())
            await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                continue
            for update in getter.result():
                if update.status in (DONE, "failed") and update.index not in seen:
                    seen.add(update.index)
                    yield _result(update, ids[update.index])
        job.result()  # a failed job raises here
        for result in _results(spec.job_dir):  # ingest failures, resumed items
            if result.index not in seen:
                yield result
    finally:
        if not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
        if scratch is not None:
            scratch.cleanup()


def iter_results(task: Task, records: Iterable[Mapping[str, Any]], **options: Any) -> Iterator[Result]:
    """The synchronous form of ``aiter_results``: a generator fed by a worker thread."""
    out: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1024)

    async def pump() -> None:
        async for result in aiter_results(task, records, **options):
            out.put(("result", result))

    def worker() -> None:
        try:
            asyncio.run(pump())
            out.put(("end", None))
        except BaseException as exc:
            out.put(("error", exc))

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    while True:
        kind, value = out.get()
        if kind == "result":
            yield value
        elif kind == "error":
            raise value
        else:
            break
    thread.join()


def _result(update: ItemUpdate, item_id: str) -> Result:
    ok = update.status == DONE
    return Result(
        index=update.index,
        id=item_id,
        status="ok" if ok else "failed",
        answer=update.answer if ok else None,
        error="" if ok else update.error,
        error_kind="" if ok else update.error_kind,
        attempts=update.attempts,
    )


def _run_sync(coro: Awaitable[T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    # A loop is already running (a notebook): run on a private loop in a thread.
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["value"] = asyncio.run(coro)  # type: ignore[arg-type]
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
