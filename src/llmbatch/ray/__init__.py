"""Scale out on Ray: one job across many workers and machines, one shared rate limit.

    records (Ray Data) ─positions─▶ blocks of ≤ rows_per_block rows, each row with its input position
      ─map_batches─▶ BlockWorker actors (ActorPoolStrategy(size=workers)), one block at a time:
                     temporary JobStore ─ingest─▶ Runner (pack → limit → call → parse → policy)
                     with limiter=SharedLimiter(RateLimiterActor) and the shared ResultCache
      ─▶ one output row per input record: id, answer fields (or text), status, error, position

Everything that makes llmbatch llmbatch runs inside the worker unchanged — packing,
per-item retry, splitting, adaptive pack size and concurrency (carried from block
to block), the result cache — and the request and token buckets live in one named
actor, so the sum over workers stays under the limit and a 429 pauses every worker.
An item that fails is a failed row, never an exception; a job that must stop
(401, quota) turns its unsent records into failed rows of kind ``stopped``.

Ray is optional: ``pip install 'llmbatch[ray]'``. Example::

    import ray, llmbatch, llmbatch.ray
    task = llmbatch.Task(instructions="Classify the review.", input="{text}", output="text")
    out = llmbatch.ray.process(ray.data.read_parquet("s3://bucket/reviews/"), task,
        provider_config={"model": "gpt-4o-mini"}, workers=8, rpm=5000, cache_dir="/shared/cache")
    out.write_parquet("s3://bucket/labels/")

Why one module: it is the public entry points (``process``, ``run_ray``) and the block
bookkeeping both share: positions, input reading and the merge of the workers' results.
The actors are in ``worker``, ``limiter`` and ``cache``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._engine.runner import Runner
from .._exceptions import JobStopped, LLMBatchError, UsageError
from .._io import open_writer
from .._metrics import Metrics
from .._options import RunOptions
from .._pricing import PriceTable
from .._store.job import JobStore
from .._task import Task
from .._types import FailureKind, IdValue, LimitName, Result, duplicate_id_error
from ..providers import ProviderConfig, create_provider
from .cache import CacheActor, SharedCache
from .limiter import RateLimiterActor, SharedLimiter
from .worker import INSTALL_HINT, POSITION, BlockWorker, WorkerSpec, import_ray, positioned, task_args

if TYPE_CHECKING:
    import ray.data

__all__ = [
    "INSTALL_HINT",
    "POSITION",
    "CacheActor",
    "RateLimiterActor",
    "SharedCache",
    "SharedLimiter",
    "cache_actor",
    "limiter_actor",
    "process",
    "run_ray",
]

NAMESPACE = "llmbatch"
"""The Ray namespace of the named limiter actors, so that every job on a cluster finds them."""

_HELD: dict[tuple[str, str, str], Any] = {}
"""The named limiters this driver made or found, by (its node, its job, name): the job id is new
with every connection to a cluster and the node id with every cluster, so a handle from an
earlier connection is never reused. A limiter that is not detached dies when its creating handle
goes (a handle found by name does not count); found by name while dying, it would fail the next
run — so the driver keeps the first handle to each."""

_NAME_RELEASE_CHECKS = 50
"""How many times (0.1 s apart) to ask for a limiter by name while a killed one still holds it."""

# -- the shared limiter ------------------------------------------------------------


def limiter_actor(
    name: str = "llmbatch-limiter",
    limits: Mapping[str, float | None] | None = None,
    *,
    detached: bool = False,
) -> Any:
    """The named ``RateLimiterActor`` (created, or found by name in the ``llmbatch`` namespace).

    Tied to the job that creates it unless ``detached``: a detached limiter lives
    until the cluster stops (or ``ray kill``), so that several jobs spending one
    API key's limit can share it by name.

    >>> actor = limiter_actor("openai-key-1", {"requests": 5000, "tokens": 2_000_000})  # doctest: +SKIP
    """
    ray = import_ray()
    configured = {k: float(v) for k, v in (limits or {}).items() if v}
    context = ray.get_runtime_context()
    key = (context.get_node_id(), context.get_job_id(), name)
    held = _HELD.get(key)
    if held is not None:
        # Reuse the handle this driver already holds: a handle found by name does not keep a
        # limiter alive, so replacing the first one with it would let the limiter die mid-run.
        try:
            ray.get(held.configure.remote(configured))
            return held
        except ray.exceptions.RayActorError:
            del _HELD[key]  # killed (``ray kill``, a lost node): make a new one below
    options: dict[str, Any] = {
        "name": name,
        "namespace": NAMESPACE,
        "get_if_exists": True,
        "num_cpus": 0,
        # Every request of every worker may be waiting in acquire at once.
        "max_concurrency": 10_000,
    }
    if detached:
        options["lifetime"] = "detached"
    # A killed limiter keeps its name for a moment, and asking by name finds the dead one.
    for check in range(1, _NAME_RELEASE_CHECKS + 1):
        actor = ray.remote(RateLimiterActor).options(**options).remote(configured)
        try:
            ray.get(actor.configure.remote(configured))
            break
        except ray.exceptions.RayActorError:
            if check == _NAME_RELEASE_CHECKS:
                raise
            time.sleep(0.1)
    _HELD[key] = actor
    return actor


def cache_actor(cache_dir: str | Path) -> Any:
    """A ``CacheActor`` over ``cache_dir`` on this (the driver's) machine, for the workers to share.

    >>> cache = cache_actor("~/.cache/llmbatch")  # doctest: +SKIP
    """
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    path = str(Path(cache_dir).expanduser().resolve())
    return ray.remote(CacheActor).options(num_cpus=0, scheduling_strategy=here).remote(path)


# -- the entry points ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Run:
    dataset: Any
    run: str
    limiter: Any
    records: int


def _start(
    dataset: Any,
    task: Task,
    *,
    provider: str,
    provider_config: ProviderConfig | Mapping[str, Any] | None,
    options: RunOptions | None,
    workers: int,
    cache_dir: str | Path | None,
    limiter_name: str,
    rpm: float | None,
    tpm: float | None,
    worker_cpus: float,
    rows_per_block: int,
    prices: PriceTable | None,
    detached: bool,
    source: str,
    results: bool,
) -> _Run:
    ray = import_ray()
    if workers < 1:
        raise UsageError("workers must be at least 1")
    if rows_per_block < 1:
        raise UsageError("rows_per_block must be at least 1")
    options = options or RunOptions()
    if isinstance(provider_config, ProviderConfig):
        config = provider_config
    else:
        config = ProviderConfig(**dict(provider_config or {}))
    if task.models and config.model is None:
        config = dataclasses.replace(config, model=task.models[0])
    _check_supported(task, options, provider, config)
    limits: dict[str, float | None] = {
        LimitName.REQUESTS: rpm or options.rpm,
        LimitName.TOKENS: tpm or options.tpm,
    }
    actor = limiter_actor(limiter_name, limits, detached=detached)
    blocks, records = positioned(dataset, rows_per_block, workers=workers, split_lines=source == "jsonl")
    spec = WorkerSpec(
        task=task_args(task),
        fingerprint=task.fingerprint,
        provider=provider,
        config=config,
        options=options,
        cache=None if cache_dir is None else cache_actor(cache_dir),
        limiter=actor,
        run=uuid.uuid4().hex,
        prices=prices,
        source=source,
        results=results,
    )
    out = blocks.map_batches(
        BlockWorker,
        batch_size=None,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=worker_cpus,
        fn_constructor_kwargs={"spec": spec},
        udf_modifying_row_count=False,
    )
    return _Run(out, spec.run, actor, records)


def _check_supported(task: Task, options: RunOptions, provider: str, config: ProviderConfig) -> None:
    """Refuse, before Ray starts anything, what the Ray engine does not do yet and what every
    worker would refuse (a Runner built on a scratch store checks the options as a worker would)."""
    if options.max_cost is not None:
        raise UsageError(
            "--max-cost needs one budget for all workers, which the Ray engine lacks; run without it"
        )
    if len(task.models) > 1:
        raise UsageError(
            "a model cascade (models = [...]) does not run on the Ray engine yet; list one model"
        )
    if options.mode == "batch" or (options.mode == "flex" and options.policy.flex_fallback == "batch"):
        raise UsageError(
            "the provider's batch API is not used by the Ray engine (one job submits a batch, not "
            "each worker): run --mode batch without --engine ray, or pass --flex-fallback sync or fail"
        )
    backend = create_provider(provider, config)
    if options.mode == "flex" and not backend.capabilities.flex:
        raise UsageError(f"--mode flex needs a provider with a flex tier (openai); {backend.name} has none")
    with tempfile.TemporaryDirectory(prefix="llmbatch-ray-check-") as tmp:
        store = JobStore.open(tmp)
        try:
            Runner(task, backend, store, options)
        finally:
            store.close()


def process(
    dataset: ray.data.Dataset,
    task: Task,
    *,
    provider: str = "openai",
    provider_config: ProviderConfig | Mapping[str, Any] | None = None,
    options: RunOptions | None = None,
    workers: int = 2,
    cache_dir: str | Path | None = None,
    limiter_name: str = "llmbatch-limiter",
    rpm: float | None = None,
    tpm: float | None = None,
    worker_cpus: float = 0.5,
    rows_per_block: int = 1000,
    prices: PriceTable | None = None,
    detached: bool = False,
) -> ray.data.Dataset:
    """Run ``task`` over every row of ``dataset`` on ``workers`` Ray actors; one output row per input row.

    Output columns: ``id`` (the task's id field, else the position), the answer's
    fields (or ``text``), ``status`` (ok | failed), ``error``, and ``llmbatch_position``
    (the row's position in ``dataset``, to join or sort back). ``rpm``/``tpm``
    (else ``options.rpm``/``tpm``, else learnt from headers) are the limits of all
    workers together. ``cache_dir`` (a path on this, the driver's, machine; one actor
    here serves it to every worker) makes a re-run skip answered records.
    ``options.concurrency`` is per worker.

    The dataset is read once, in order, into the object store to number its
    rows (``preserve_order`` is set on its context); the returned dataset is lazy.

    >>> out = process(ray.data.read_json("reviews.jsonl", lines=True), task,  # doctest: +SKIP
    ...               provider_config={"model": "gpt-4o-mini"}, workers=4, rpm=5000)
    >>> out.write_parquet("labels/")                                          # doctest: +SKIP
    """
    run = _start(
        dataset,
        task,
        provider=provider,
        provider_config=provider_config,
        options=options,
        workers=workers,
        cache_dir=cache_dir,
        limiter_name=limiter_name,
        rpm=rpm,
        tpm=tpm,
        worker_cpus=worker_cpus,
        rows_per_block=rows_per_block,
        prices=prices,
        detached=detached,
        source="fields",
        results=False,
    )
    out: ray.data.Dataset = run.dataset
    return out


# -- the command-line engine -----------------------------------------------------------

_READERS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def _read(path: str) -> tuple[Any, str]:
    """A Ray dataset over ``path`` (any filesystem Ray reads), and how its rows become records.

    JSONL files are read whole and parsed line by line by llmbatch's own reader, so a
    bad line is a failed row (as in one process) rather than a failed read, and values
    are not re-typed by Arrow. CSV columns are read as strings, as llmbatch's CSV reader does.
    """
    ray = import_ray()
    suffix = Path(path.rstrip("/")).suffix.lower()
    kind = _READERS.get(suffix)
    if kind is None:
        raise UsageError(f"cannot tell the format of {path} from its name; use .jsonl, .csv or .parquet")
    if kind == "jsonl":
        return ray.data.read_binary_files(path), "jsonl"
    if kind == "csv":
        return ray.data.read_csv(path, convert_options=_csv_strings(path)), "csv"
    return ray.data.read_parquet(path), "fields"


def _csv_strings(path: str) -> Any:
    """Arrow CSV options that keep every column a string (its names from the header)."""
    import pyarrow.csv as pa_csv
    import pyarrow.fs as pa_fs

    uri = path if "://" in path else str(Path(path).resolve())
    filesystem, where = pa_fs.FileSystem.from_uri(uri)
    import pyarrow as pa

    with filesystem.open_input_stream(where) as stream:
        names = pa_csv.open_csv(stream).schema.names
    return pa_csv.ConvertOptions(column_types={name: pa.string() for name in names})


def _ours(error: BaseException) -> LLMBatchError | None:
    """llmbatch's own error inside the exceptions Ray wraps a worker's failure in, if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, LLMBatchError):
            return current
        seen.add(id(current))
        cause = getattr(current, "cause", None)
        current = cause if isinstance(cause, BaseException) else (current.__cause__ or current.__context__)
    return None


def _results(tables: Iterable[Any]) -> Iterator[Result]:
    for table in tables:
        for row in table.to_pylist():
            answer = row["answer"]
            yield Result(
                index=row[POSITION],
                id=row["id"],
                status=row["status"],
                answer=None if answer is None else json.loads(answer),
                error=row["error"],
                error_kind=row["error_kind"],
                attempts=row["attempts"],
            )


def _fail_later_duplicates(results: list[Result], metrics: Metrics) -> None:
    """Fail every record that repeats an earlier record's id, as one process does.

    A worker sees only its block, so a repeat across blocks is caught here
    (and the metrics moved along with it).
    """
    first: dict[IdValue, int] = {}
    for n, result in enumerate(results):
        seen = first.setdefault(result.id, result.index)
        if seen == result.index or result.error_kind == FailureKind.DUPLICATE_ID:
            continue
        if result.status == "ok":
            metrics.items_ok -= 1
        else:
            metrics.items_failed[result.error_kind or "unknown"] -= 1
        metrics.items_failed[FailureKind.DUPLICATE_ID] += 1
        results[n] = Result(
            index=result.index,
            id=result.id,
            status="failed",
            error=duplicate_id_error(result.id, seen),
            error_kind=FailureKind.DUPLICATE_ID,
            attempts=result.attempts,
        )


def run_ray(
    input_path: str | Path,
    task: Task,
    output_path: str | Path,
    *,
    workers: int = 2,
    ray_address: str | None = None,
    provider: str = "openai",
    provider_config: ProviderConfig | Mapping[str, Any] | None = None,
    options: RunOptions | None = None,
    cache_dir: str | Path | None = None,
    limiter_name: str = "llmbatch-limiter",
    worker_cpus: float = 0.5,
    rows_per_block: int = 1000,
    prices: PriceTable | None = None,
) -> dict[str, Any]:
    """``llmbatch run --engine ray``: read with Ray, run on ``workers`` actors, write ``output_path``.

    The output (JSONL or CSV by extension, as ``llmbatch run`` writes) is
    collected on this machine and written in input order, so it suits outputs
    that fit in memory; for larger ones use ``process`` and a Ray writer.
    Returns the run's metrics summary (``Metrics.summary()`` plus ``rows_written``,
    ``workers`` and ``engine``). Raises JobStopped after writing when the job had
    to stop; the unsent records are failed rows of kind ``stopped``.

    >>> summary = run_ray("reviews.jsonl", task, "labels.jsonl", workers=3,  # doctest: +SKIP
    ...                   provider_config={"model": "gpt-4o-mini"}, cache_dir="/shared/cache")
    """
    if str(input_path) == "-":
        raise UsageError("--engine ray reads the input where Ray can reach it, not from standard input")
    ray = import_ray()
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=ray_address, logging_level=logging.WARNING)
    try:
        started = time.monotonic()
        dataset, source = _read(str(input_path))
        run = _start(
            dataset,
            task,
            provider=provider,
            provider_config=provider_config,
            options=options,
            workers=workers,
            cache_dir=cache_dir,
            limiter_name=limiter_name,
            rpm=None,
            tpm=None,
            worker_cpus=worker_cpus,
            rows_per_block=rows_per_block,
            prices=prices,
            detached=False,
            source=source,
            results=True,
        )
        try:
            tables = list(run.dataset.iter_batches(batch_size=None, batch_format="pyarrow"))
        except ray.exceptions.RayError as exc:
            raise _ours(exc) or exc from exc
        metrics, stop = ray.get(run.limiter.finish.remote(run.run))
        results = sorted(_results(tables), key=lambda r: r.index)
        _fail_later_duplicates(results, metrics)
        rows = open_writer(output_path, task).write(results)
    finally:
        if started_ray:
            ray.shutdown()
    metrics.clock = time.monotonic
    metrics.started, metrics.finished = started, time.monotonic()
    if stop is not None:
        # Only the reason crosses from the worker that stopped (a string): nothing to chain.
        raise JobStopped(
            f"{stop}; wrote {rows:,} rows to {output_path}, the unsent records as failed rows "
            "(kind stopped): run the same command again to resume"
        )
    return {**metrics.summary(), "rows_written": rows, "workers": workers, "engine": "ray"}
