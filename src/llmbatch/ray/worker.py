"""The Ray side of ``llmbatch.ray``: the actor that runs llmbatch's Runner over a block,
and the step that numbers the input's rows.

A block's records go into a temporary JobStore (ingest as in one process), the
Runner sends them through the shared limiter (``ray.limiter``) and the shared
cache, and every record comes back as one row — a failed item as a failed row,
a job that had to stop as failed rows of kind ``stopped``. Ray itself is
imported on first use (``import_ray``), so this module loads without it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
from dataclasses import dataclass
from typing import Any

from .._engine.runner import Runner
from .._engine.steering import Steering
from .._exceptions import FatalError, UsageError
from .._io import Record, output_row
from .._io.jsonl import jsonl_record
from .._metrics import Metrics
from .._options import RunOptions
from .._pricing import PriceTable, price_for
from .._store.ingest import ingest
from .._store.job import FAILED, ItemUpdate, JobStore
from .._task import Task
from .._types import Result
from ..providers import ProviderConfig, create_provider
from .cache import SharedCache
from .limiter import SharedLimiter

__all__ = ["INSTALL_HINT", "POSITION", "BlockWorker", "WorkerSpec", "import_ray", "positioned", "task_args"]

POSITION = "llmbatch_position"
"""The output column holding each record's 0-based position in the input."""

INSTALL_HINT = "the Ray engine needs Ray: pip install 'llmbatch[ray]'"

_LINE, _LINE_NO = "line", "line_no"
"""The columns of a JSONL line (bytes) and its 0-based line number in its file."""


def import_ray() -> Any:
    """The ``ray`` package, imported on first use; a UsageError that says how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise UsageError(INSTALL_HINT) from exc
    return ray


def task_args(task: Task) -> dict[str, Any]:
    """The Task's constructor arguments: a worker rebuilds the Task rather than unpickle its
    compiled parts (the schema validator holds closures)."""
    return {f.name: getattr(task, f.name) for f in dataclasses.fields(task) if f.init}


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    task: dict[str, Any]
    """The Task's constructor arguments (see ``task_args``)."""
    fingerprint: str
    provider: str
    config: ProviderConfig
    options: RunOptions
    cache: Any
    """The CacheActor's handle, or None for no cache."""
    limiter: Any
    run: str
    prices: PriceTable | None
    source: str
    """How a row becomes a record: ``fields`` (the row is the record), ``jsonl`` (a raw line)
    or ``csv`` (string fields; the header is line 0)."""
    results: bool
    """Rows for ``run_ray`` (the Result, answer as JSON) instead of output rows."""


class BlockWorker:
    """One Ray Data actor: runs llmbatch's Runner over each block it is given.

    The runner's ``Steering`` (pack size, concurrency, token calibration, answer sizes,
    the job plan) is handed from one block to the next, so a worker adapts once, not
    once per block.
    """

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.task = Task(**spec.task)
        if self.task.fingerprint != spec.fingerprint:
            raise UsageError(
                "the task changed on its way to the Ray worker: install the same llmbatch everywhere"
            )
        self._steering: Steering | None = None

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        spec = self.spec
        records = [self._record(row) for row in batch.to_pylist()]
        results, metrics = self._run_block(records)
        # Waited for: the driver reads the run's metrics once the last block is back.
        import_ray().get(spec.limiter.report.remote(spec.run, metrics))
        if spec.results:
            return pa.Table.from_pylist([_result_row(r) for r in results], schema=_result_schema())
        return pa.Table.from_pylist([{**output_row(self.task, r), POSITION: r.index} for r in results])

    def _record(self, row: dict[str, Any]) -> Record:
        position = int(row.pop(POSITION))
        source = self.spec.source
        if source == "jsonl":
            return jsonl_record(position, row[_LINE_NO], row[_LINE])
        if source == "csv":
            fields = {str(k).strip(): "" if v is None else v for k, v in row.items()}
            return Record(position, position + 1, fields)
        return Record(position, position, row)

    def _run_block(self, records: list[Record]) -> tuple[list[Result], Metrics]:
        spec = self.spec
        metrics = Metrics()
        with tempfile.TemporaryDirectory(prefix="llmbatch-ray-") as tmp:
            store = JobStore.open(tmp)
            try:
                ingest(store, self.task, records)
                stop = import_ray().get(spec.limiter.stop_reason.remote(spec.run))
                if stop is None:
                    stop = asyncio.run(self._send(store, metrics))
                else:
                    metrics.items_total = len(records)
                    metrics.items_failed.update(store.failures_by_kind())
                if stop is not None:
                    metrics.observe_failed("stopped", _fail_pending(store, stop))
                results = list(store.results())
            finally:
                store.close()
        return results, metrics

    async def _send(self, store: JobStore, metrics: Metrics) -> str | None:
        """Run the block's pending items; the stop reason when the job had to stop."""
        spec = self.spec
        provider = create_provider(spec.provider, spec.config)
        async with provider:
            cache = None
            if spec.cache is not None:
                cache = SharedCache(spec.cache, (provider.endpoint, provider.model, self.task.fingerprint))
            try:
                limits = await spec.limiter.limits.remote()
                runner = Runner(
                    self.task,
                    provider,
                    store,
                    spec.options,
                    price=price_for(
                        provider.model, billed=provider.capabilities.billed, prices=self.spec.prices
                    ),
                    metrics=metrics,
                    limiter=SharedLimiter(spec.limiter, limits),
                    cache=cache,
                    # What the worker's earlier blocks learnt (and they warmed the provider's cache).
                    steering=self._steering,
                )
                try:
                    await runner.run()
                except FatalError as exc:
                    spec.limiter.stop.remote(spec.run, str(exc))
                    return str(exc)
                finally:
                    self._steering = runner.steering
            finally:
                if cache is not None:
                    # The block's answers are in the cache before its rows are handed back.
                    cache.flush()
        return None


def _fail_pending(store: JobStore, reason: str) -> int:
    """Turn the block's unsent items into failed rows (the job stopped); returns how many."""
    rows = store.pending(-1, 1 << 62)
    message = f"not sent: the job stopped ({reason}); run it again to resume"
    with store.transaction():
        store.update_items(
            [ItemUpdate(row.position, FAILED, row.attempts, None, message, "stopped") for row in rows]
        )
    return len(rows)


def _result_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            (POSITION, pa.int64()),
            ("id", pa.string()),
            ("status", pa.string()),
            ("answer", pa.string()),
            ("error", pa.string()),
            ("error_kind", pa.string()),
            ("attempts", pa.int64()),
        ]
    )


def _result_row(result: Result) -> dict[str, Any]:
    answer = None if result.answer is None else json.dumps(result.answer, ensure_ascii=False)
    return {
        POSITION: result.index,
        # Blocks carry ids as Arrow strings: a number id comes back as its digits here
        # (the local engine keeps its JSON value).
        "id": result.id if isinstance(result.id, str) else json.dumps(result.id),
        "status": result.status,
        "answer": answer,
        "error": result.error,
        "error_kind": result.error_kind,
        "attempts": result.attempts,
    }


# -- positions -----------------------------------------------------------------------


def _num_rows(table: Any) -> int:
    return int(table.num_rows)


def _piece(offset: int, bounds: list[tuple[int, int]], *tables: Any) -> Any:
    """Rows ``bounds[i]`` of ``tables[i]``, concatenated, with their input positions from ``offset``."""
    import pyarrow as pa

    parts = [table.slice(start, stop - start) for table, (start, stop) in zip(tables, bounds, strict=True)]
    piece = pa.concat_tables(parts, promote_options="permissive")
    if POSITION in piece.column_names:
        piece = piece.drop_columns([POSITION])
    return piece.append_column(POSITION, pa.array(range(offset, offset + piece.num_rows), pa.int64()))


def _lines(table: Any) -> Any:
    """Files (``read_binary_files`` rows) into their JSONL lines, blank lines left out as llmbatch's
    reader does. Split on ``\\n`` only: ``read_text`` would also split inside a record at U+2028."""
    import pyarrow as pa

    lines: list[bytes] = []
    numbers: list[int] = []
    for data in table.column("bytes").to_pylist():
        for number, raw in enumerate(data.split(b"\n")):
            if raw.strip():
                lines.append(raw)
                numbers.append(number)
    return pa.table({_LINE: pa.array(lines, pa.binary()), _LINE_NO: pa.array(numbers, pa.int64())})


def positioned(
    dataset: Any, rows_per_block: int, *, workers: int = 1, split_lines: bool = False
) -> tuple[Any, int]:
    """The dataset as blocks of up to ``rows_per_block`` rows, each row with its input position.

    Positions follow the dataset's order, so the dataset is read once in order
    (``preserve_order``) and held in the object store; every later step is free
    to run out of order because each row carries its position. Small blocks are
    joined and large ones cut, so a worker's Runner gets a block worth adapting
    over, and there are at least ``workers`` blocks when there are
    as many rows. ``split_lines`` turns whole files into their JSONL lines first.
    """
    ray = import_ray()
    dataset.context.execution_options.preserve_order = True
    blocks = dataset.to_arrow_refs()
    # Whole CPUs for these short tasks: fractional ones make Ray start a process for each.
    if split_lines:
        split = ray.remote(num_cpus=1)(_lines)
        blocks = [split.remote(block) for block in blocks]
    count = ray.remote(num_cpus=1)(_num_rows)
    counts = ray.get([count.remote(block) for block in blocks])
    # Never fewer blocks than workers: a small input still spreads over all of them.
    rows_per_block = max(1, min(rows_per_block, -(-sum(counts) // workers)))
    cut = ray.remote(num_cpus=1)(_piece)
    pieces: list[Any] = []
    offset = 0
    segments: list[tuple[Any, int, int]] = []
    filled = 0
    for block, rows in zip(blocks, counts, strict=True):
        start = 0
        while start < rows:
            stop = min(rows, start + rows_per_block - filled)
            segments.append((block, start, stop))
            filled += stop - start
            start = stop
            if filled == rows_per_block:
                pieces.append(cut.remote(offset, [(a, b) for _, a, b in segments], *(s[0] for s in segments)))
                offset, segments, filled = offset + filled, [], 0
    if segments:
        pieces.append(cut.remote(offset, [(a, b) for _, a, b in segments], *(s[0] for s in segments)))
        offset += filled
    if pieces:
        # Cut before the workers start, so that they never wait on each other for CPUs.
        ray.wait(pieces, num_returns=len(pieces), fetch_local=False)
    return ray.data.from_arrow_refs(pieces), offset
