"""The Python API: ``llmbatch.run`` / ``arun`` and the streaming ``iter_results`` / ``aiter_results``.

    >>> import llmbatch
    >>> task = llmbatch.Task(instructions="Classify the review.", input="{text}", output="text")
    >>> result = llmbatch.run(task, [{"id": "a", "text": "Great!"}], provider="sim")
    >>> result.results[0].status
    'ok'

``run`` works in a notebook that already runs an event loop (it then runs the
job on a private loop in a worker thread). The four functions take the same
keyword options (``_api_options.RunKwargs``), checked when the function is
called: a misspelt option is a ``TypeError``, not an option silently ignored.
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
from typing import Any, TypeVar, Unpack

from ._api_options import Plan, RunKwargs, check_options, with_options_doc
from ._exceptions import UsageError
from ._io import Record
from ._jobs.job import JobSpec, run_job
from ._store.ingest import record_id
from ._store.job import ItemUpdate, read_results
from ._task import Task
from ._types import ItemStatus, Result
from .providers import create_provider
from .providers.base import Provider

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
    task: Task, records: Iterable[Mapping[str, Any]], plan: Plan
) -> tuple[JobSpec, tempfile.TemporaryDirectory[str] | None]:
    scratch = None
    job_dir = plan.job_dir
    if job_dir is None:
        scratch = tempfile.TemporaryDirectory(prefix="llmbatch-")
        job_dir = Path(scratch.name)
    spec = JobSpec(
        task=task,
        input="<records>",
        output=None,
        job_dir=job_dir,
        options=plan.options,
        prices=plan.prices,
        restart=plan.restart,
        cache_dir=plan.cache_dir,
        records=records,
    )
    return spec, scratch


def _provider(plan: Plan) -> Provider:
    # Made before the job's folder: a missing API key (the provider's own message) leaves nothing behind.
    return create_provider(plan.provider, plan.config)


def _inputs(caller: str, task: Any, records: Any) -> Iterable[Mapping[str, Any]]:
    """The records, checked to be dicts (lazily: they may be a stream) for a real Task."""
    if not isinstance(task, Task):
        raise UsageError(
            f"{caller}(): task must be a llmbatch.Task, not {type(task).__name__} "
            "(Task.from_file(path) loads a task file)"
        )
    if isinstance(records, str | bytes | Mapping) or not isinstance(records, Iterable):
        # A dict or a string is iterable too, but over keys or characters: never what was meant.
        raise UsageError(
            f"{caller}(): records must be an iterable of dicts (a list of records), "
            f"not {type(records).__name__}"
        )

    def checked() -> Iterator[Mapping[str, Any]]:
        for number, record in enumerate(records, 1):
            if not isinstance(record, Mapping):
                raise UsageError(
                    f"{caller}(): record {number} is {type(record).__name__}, not a dict of fields"
                )
            yield record

    return checked()


@with_options_doc
async def arun(task: Task, records: Iterable[Mapping[str, Any]], **options: Unpack[RunKwargs]) -> RunResult:
    """Run ``task`` over ``records`` (dicts); every record's result, in input order.

    >>> result = await llmbatch.arun(task, records, provider="sim", batch_size=10)  # doctest: +SKIP
    """
    plan = check_options("arun", options)
    return await _arun(task, _inputs("arun", task, records), plan)


async def _arun(task: Task, records: Iterable[Mapping[str, Any]], plan: Plan) -> RunResult:
    provider = _provider(plan)
    spec, scratch = _spec(task, records, plan)
    try:
        job = await run_job(spec, provider)
        return RunResult(read_results(spec.job_dir), job.metrics.summary())
    finally:
        if scratch is not None:
            scratch.cleanup()


@with_options_doc
def run(task: Task, records: Iterable[Mapping[str, Any]], **options: Unpack[RunKwargs]) -> RunResult:
    """The synchronous form of ``arun`` (safe inside a running event loop, e.g. Jupyter).

    >>> result = llmbatch.run(task, records, provider="sim", max_cost=0.50)  # doctest: +SKIP
    """
    plan = check_options("run", options)
    return _run_sync(_arun(task, _inputs("run", task, records), plan))


@with_options_doc
def aiter_results(
    task: Task, records: Iterable[Mapping[str, Any]], **options: Unpack[RunKwargs]
) -> AsyncIterator[Result]:
    """Yield each record's result as soon as it is final (completion order, not input order).

    >>> async for result in llmbatch.aiter_results(task, records, provider="sim"):  # doctest: +SKIP
    ...     print(result.id, result.answer)

    The options are checked here, when it is called, not at the first ``async for`` step.
    """
    plan = check_options("aiter_results", options)
    return _aiter(task, _inputs("aiter_results", task, records), plan)


async def _aiter(task: Task, records: Iterable[Mapping[str, Any]], plan: Plan) -> AsyncIterator[Result]:
    records = list(records)
    provider = _provider(plan)
    spec, scratch = _spec(task, records, plan)
    ids = [record_id(task, Record(i, i, dict(fields)))[0] for i, fields in enumerate(records)]
    settled: asyncio.Queue[Sequence[ItemUpdate]] = asyncio.Queue()
    job = asyncio.create_task(run_job(spec, provider, on_settled=settled.put_nowait))
    seen: set[int] = set()
    try:
        while not (job.done() and settled.empty()):
            getter = asyncio.ensure_future(settled.get())
            await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                continue
            for update in getter.result():
                if update.status in (ItemStatus.DONE, ItemStatus.FAILED) and update.index not in seen:
                    seen.add(update.index)
                    yield _result(update, ids[update.index])
        job.result()  # a failed job raises here
        for result in read_results(spec.job_dir):  # ingest failures, resumed items
            if result.index not in seen:
                yield result
    finally:
        if not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
        if scratch is not None:
            scratch.cleanup()


@with_options_doc
def iter_results(
    task: Task, records: Iterable[Mapping[str, Any]], **options: Unpack[RunKwargs]
) -> Iterator[Result]:
    """The synchronous form of ``aiter_results``: a generator fed by a worker thread.

    >>> for result in llmbatch.iter_results(task, records, provider="sim"):  # doctest: +SKIP
    ...     print(result.id, result.answer)

    The options are checked here, when it is called, not at the first ``next``.
    """
    plan = check_options("iter_results", options)
    return _iter(task, _inputs("iter_results", task, records), plan)


def _iter(task: Task, records: Iterable[Mapping[str, Any]], plan: Plan) -> Iterator[Result]:
    out: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1024)

    async def pump() -> None:
        async for result in _aiter(task, records, plan):
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


def _result(update: ItemUpdate, item_id: str | int | float | bool) -> Result:
    ok = update.status == ItemStatus.DONE
    return Result(
        index=update.index,
        id=item_id,
        status="ok" if ok else "failed",
        answer=update.answer if ok else None,
        error="" if ok else update.error,
        # A plain str, as in the Results read back from the store.
        error_kind="" if ok else str(update.error_kind),
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
