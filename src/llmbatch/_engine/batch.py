"""``--mode batch``: packs through the provider's batch API (half the price, results within 24 h).

    pending items ─plan─▶ packs (fixed --batch-size) ─render─▶ batch lines (custom_id = pack id)
    ─split by the limits─▶ batches ─record in the store─▶ submit ─▶ poll with backoff
    ─▶ results, in any order ─join on custom_id─▶ the runner's outcome rules
    ─▶ one transaction per result file ─▶ only failed, expired or invalid items go again

``BatchRunner`` composes the same ``RunCore`` as the synchronous ``Runner``: the
planner, the pack format, the one prepare step, the outcome rules (``settle``:
parse per item, retry missing or invalid items in smaller packs and the last
attempt alone; the retry policy for a failed or expired line), the cache, the
budget and the metrics. What differs is how packs travel, so only that is here:

- no controller: packs have the fixed ``--batch-size`` and are all sent at once,
  split into batches of at most ``max_requests`` lines and ``max_bytes``;
- a batch is written to the store (``batches``: its packs, their items and
  retry state) *before* it is submitted and gets its provider id right after,
  so a restarted process re-attaches to it instead of paying for it twice;
- a finished batch's results are committed in one transaction together with
  the batch's own row: the core's writes are held (``Writes(held=True)``) until
  the file is done (``commit``);
- cost is the batch price (``Price.batch``);
- where a batch's requests read only a prompt-cache entry that exists when the batch
  starts (``Capabilities.primes_batch_cache``: Anthropic), a batch of one pack goes
  first and the rest waits until it has ended: the entry it writes is what every line
  of the batches after it reads (Anthropic's advice for batches with a shared prefix).
  Without it a batch is cold: its lines run in parallel, none reads, every one writes.

A process killed between recording a batch and learning its provider id (one
HTTP call) cannot tell whether the provider accepted it: the batch is marked
``abandoned`` and its items are planned again.

Why one module: it is one mode (submit, poll, re-attach after a crash, join results
back) around one store table, ``batches``. It reuses the core's prepare and settle
steps and adds only how packs travel.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._exceptions import FatalError, ProviderError, ServerError
from .._gates.limiter import RateLimiter
from .._metrics import Metrics
from .._options import RunOptions
from .._pack import choose_packer, shared_prefix_tokens
from .._pack.tokens import Calibration
from .._pricing import Price
from .._store.cache import Cache
from .._store.job import BatchRow, ItemUpdate, JobStore
from .._task import Task
from .._types import Completion, Item, Request
from ..providers.base import BatchStatus, Provider, batch_api
from .core import RunCore
from .planner import ItemState, Pack
from .steering import Clock, Sleep

__all__ = ["DEFAULT_BATCH_SIZE", "BatchRunner", "PollBackoff"]

log = logging.getLogger("llmbatch")

DEFAULT_BATCH_SIZE = 20
"""Records per pack when ``--batch-size`` is auto: batch mode has no feedback to adapt on."""
PRIMER_META = "primer_batch"
"""The store's note of the primer batch's row, for a restarted run."""
PRIME_AGAIN_AFTER = 240.0
"""Seconds since a batch last ended after which the next wave is primed again: the shortest
entry a provider keeps (Anthropic's five minutes from its last read) may have lapsed."""


@dataclass(frozen=True, slots=True)
class PollBackoff:
    """How long to wait before polling a batch again: ``first`` seconds, growing by
    ``factor`` per poll up to ``cap`` (batches take minutes to hours; early polls are cheap).

    >>> PollBackoff(first=5, factor=2, cap=60).delay(3)
    40.0
    """

    first: float = 5.0
    factor: float = 1.5
    cap: float = 60.0

    def delay(self, polls: int) -> float:
        return float(min(self.cap, self.first * self.factor ** min(polls, 60)))


@dataclass(slots=True, eq=False)
class _OpenBatch:
    """A submitted batch the runner waits for: its row in the store, its packs by custom_id."""

    row: int
    provider_batch_id: str
    packs: dict[str, Pack]
    submitted: float
    """Unix time of the submission (the latency of its lines runs from here)."""
    next_poll: float = 0.0
    """Clock time of the next poll."""
    polls: int = 0
    poll_failures: int = 0
    projected: float = 0.0
    """Most it can cost (USD), reserved against ``--max-cost`` until its results are in."""

    @property
    def positions(self) -> list[int]:
        return [state.index for pack in self.packs.values() for state in pack.states]


@dataclass(slots=True)
class _Line:
    custom_id: str
    request: Request
    pack: Pack
    size: int
    projected: float


@dataclass(slots=True)
class _Draft:
    """Lines gathered for the next batch."""

    lines: list[_Line] = field(default_factory=list)
    size: int = 0


class BatchRunner:
    """Runs every pending item of a job's store through the provider's batch API.

    >>> runner = BatchRunner(task, provider, store, RunOptions(batch_size=20))  # doctest: +SKIP
    >>> metrics = await runner.run()  # submits, polls, re-submits what failed   # doctest: +SKIP

    ``max_requests`` and ``max_bytes`` default to the provider's ``batch_limits``;
    ``poll_interval`` is the first wait before polling a batch, growing to
    ``max_poll_interval``. ``clock`` and ``sleep`` are injectable.
    """

    def __init__(
        self,
        task: Task,
        provider: Provider,
        store: JobStore,
        options: RunOptions,
        *,
        price: Price | None = None,
        metrics: Metrics | None = None,
        cache: Cache | None = None,
        on_settled: Callable[[Sequence[ItemUpdate]], None] | None = None,
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        max_requests: int | None = None,
        max_bytes: int | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.api = batch_api(provider)
        self.task = task
        self.provider = provider
        self.store = store
        self.options = dataclasses.replace(options, batch_size=options.batch_size or DEFAULT_BATCH_SIZE)
        self.batch_size: int = self.options.batch_size or DEFAULT_BATCH_SIZE
        self.policy = options.policy
        self.clock = clock
        self.sleep = sleep
        self.metrics = metrics or Metrics(clock=clock)
        self._held: set[int] = set()
        """Positions of items in open batches: pending in the store, but not to be planned."""
        self.core = RunCore(
            task,
            provider,
            store,
            self.options,
            choose_packer(self.options.pack or provider.default_pack, task, provider),
            # Batch lines are not rate limited; only the model's context bounds a request.
            RateLimiter(learn=False, clock=clock, sleep=sleep),
            Calibration(),
            price=price,
            metrics=self.metrics,
            cache=cache,
            on_settled=on_settled,
            clock=clock,
            batch_prices=True,
            journal=False,  # the batches table holds what is in flight
            held=True,  # a result file is applied whole, in one transaction
            exclude=self._held,
        )
        self.budget = self.core.budget
        self.planner = self.core.planner
        self._commit = self.core.writes.commit
        limits = self.api.batch_limits
        self.max_requests = max_requests or limits.max_requests
        self.max_bytes = max_bytes or limits.max_bytes
        self.poll = PollBackoff(first=poll_interval, cap=max(poll_interval, max_poll_interval))
        self.batches_submitted = 0
        self.batches_reattached = 0
        self.primers = 0
        """Batches of one pack sent to prime the prompt cache of the batches after them."""
        self._primer: int | None = None
        """The store row of the primer batch open now: nothing else is submitted meanwhile."""
        self._warm_at = -math.inf
        """Clock time a batch last ended (its lines wrote or read the cache entry)."""
        self._primer_pointless = False
        """The job's prefix is shorter than the model's minimum cacheable length."""
        self._open: dict[int, _OpenBatch] = {}
        self._submit_after = 0.0
        self._submit_failures = 0
        self._halted = False
        """A fatal error while polling: nothing more can be learnt now (the batches stay open)."""
        self._budget_full = False
        """The last line drafted did not fit the budget: submitting waits for open batches."""

    @property
    def stop_reason(self) -> str | None:
        return self.core.stop_reason

    async def run(self) -> Metrics:
        """Submit, poll and re-submit until every pending item is settled; the metrics.
        Raises ``BudgetReached`` or a ``FatalError`` if the job had to stop."""
        return await self.core.run(self._dispatch)

    def _release(self, projected: float, *, count: int = 1) -> None:
        if self.budget is not None:
            self.budget.release(projected, count=count)

    # -- the loop ------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        self._reattach()
        try:
            await self._loop()
        except asyncio.CancelledError:
            self._commit()  # what is held is whole (outcomes are applied without awaiting)
            raise
        self._commit()

    async def _loop(self) -> None:
        while True:
            if self.stop_reason is None and self.clock() >= self._submit_after:
                await self._submit_ready()
            if self._halted:
                return
            if not self._open:
                if self.stop_reason is not None or self.planner.idle:
                    return
                await self.sleep(max(0.0, self._submit_after - self.clock()))
                continue
            await self._poll_due()

    def _reattach(self) -> None:
        """Adopt the batches a previous process submitted and did not finish (and, if one is
        the primer, keep waiting for it before submitting the rest)."""
        primer = self.store.get_meta(PRIMER_META)
        for row in self.store.open_batches():
            if row.provider_batch_id is None:
                log.warning(
                    "batch %d was recorded but its submission was not confirmed; its items are sent "
                    "again (if the provider did accept it, those items are paid twice)",
                    row.id,
                )
                self._abandon(row.id)
                continue
            packs = self._restore(row)
            batch = _OpenBatch(row.id, row.provider_batch_id, packs, row.submitted, next_poll=self.clock())
            self._open[row.id] = batch
            self._held.update(batch.positions)
            self.batches_reattached += 1
            if row.id == primer:
                self._primer = row.id
            log.info("re-attached to batch %s (%d packs)", row.provider_batch_id, len(packs))

    def _abandon(self, row: int) -> None:
        self._commit(lambda: self.store.finish_batch(row, "abandoned", error="interrupted while submitting"))

    def _restore(self, row: BatchRow) -> dict[str, Pack]:
        positions = [entry[0] for record in row.packs.values() for entry in record["items"]]
        pending = {
            idx: (item_id, text, attempts)
            for idx, item_id, text, attempts in self.store.pending_at(positions)
        }
        packs: dict[str, Pack] = {}
        for custom_id, record in row.packs.items():
            states = []
            for position, transient, boosted in record["items"]:
                if position in pending:
                    item_id, text, attempts = pending[position]
                    states.append(
                        ItemState(
                            Item(position, item_id, text),
                            attempts=attempts,
                            transient=transient,
                            boosted=bool(boosted),
                        )
                    )
            # Answers are matched to the items by their place in the pack as sent: a pack
            # missing an item cannot be read back, and its other items are planned anew.
            if states and len(states) == len(record["items"]):
                packs[custom_id] = Pack(states, failures=record.get("failures", 0))
        return packs

    # -- submitting ----------------------------------------------------------------------

    async def _submit_ready(self) -> None:
        """Send everything the planner holds, as few batches as the limits allow (after a
        primer batch where the provider's cache needs one)."""
        if self._primer is not None or (self._needs_primer() and await self._submit_primer()):
            return
        draft = _Draft()
        self.metrics.pack_size, self.metrics.concurrency = self.batch_size, len(self._open)
        self._budget_full = False
        while self.stop_reason is None and not self._budget_full:
            # Backoff delays of the retry policy are for hammering an endpoint; a batch
            # is its own delay, so every waiting pack goes in now.
            pack = self.planner.next_pack(self.batch_size, math.inf)
            if pack is None:
                break
            line = self._line(pack, len(draft.lines))
            if line is None:
                continue
            if len(draft.lines) >= self.max_requests or draft.size + line.size > self.max_bytes:
                accepted = await self._submit(draft)
                draft = _Draft()
                if not accepted or self.stop_reason is not None:
                    # Back off (or stop): this line waits with the packs that just failed.
                    self._release(line.projected)
                    self.planner.resend(line.pack)
                    return
                line.custom_id = "p0"
            draft.lines.append(line)
            draft.size += line.size
        if draft.lines:
            await self._submit(draft)

    def _needs_primer(self) -> bool:
        capable = self.provider.capabilities.primes_batch_cache and not self._primer_pointless
        return capable and self.clock() - self._warm_at >= PRIME_AGAIN_AFTER

    async def _submit_primer(self) -> bool:
        """Submit one pack as a batch of its own and hold the rest until it has ended; False
        (nothing submitted) when the job has one pack left, which then goes as it is."""
        pack = self.planner.next_pack(self.batch_size, math.inf)
        if pack is None:
            return False
        after = self.planner.next_pack(self.batch_size, math.inf)
        if after is None:
            self.planner.resend(pack)
            return False
        self.planner.resend(after)
        line = self._line(pack, 0)
        if line is None:
            return False
        minimum = self.provider.capabilities.cache_min_prefix
        prefix = shared_prefix_tokens(line.request)
        if minimum is not None and prefix < minimum:
            # Nothing would be cached: the batch goes as it is, without a round trip first.
            self._release(line.projected)
            self.planner.resend(pack)
            self._primer_pointless = True
            log.info(
                "not priming the prompt cache: the shared prefix (about %d tokens) is shorter than "
                "the %d the model caches",
                prefix,
                minimum,
            )
            return False
        accepted = await self._submit(_Draft([line], line.size))
        if accepted:
            primer = self._primer = max(self._open)  # the row just inserted
            # Kept in the store, so that a restarted run waits for it too instead of going cold.
            self._commit(lambda: self.store.set_meta(PRIMER_META, primer))
            self.primers += 1
            log.info(
                "submitted one pack as a batch of its own first: its answer writes the prompt cache "
                "that the rest, submitted once it ends, reads (a cold batch reads none)"
            )
        return True

    def _line(self, pack: Pack, number: int) -> _Line | None:
        """The pack as a batch line, or None when it was split, failed or is over budget."""
        budget = self.task.answer_budget * (self.policy.budget_boost if pack.boosted else 1)
        request = self.core.render(pack, budget)
        if request is None:
            return None
        # Measured with the longest custom_id and ASCII escapes: never below the bytes sent.
        sample = self.api.batch_line(f"p{self.max_requests}", request)
        size = len(json.dumps(sample).encode()) + 1
        if size > self.max_bytes:
            self.core.set_aside(
                pack, f"the batch line takes {size} bytes, more than the {self.max_bytes} a batch may hold"
            )
            return None
        estimate = self.core.calibration.correct(request.est_prompt_tokens)
        projected = self.core.projected_cost(estimate, request.max_tokens)
        if projected is not None and self.budget is not None and not self.budget.try_reserve(projected):
            # Lines drafted or in open batches hold their worst case: submit what is drafted
            # and wait for batches to settle (releasing what they did not spend) before
            # deciding; stop only when nothing holds a reservation and this still does not fit.
            self._budget_full = True
            if not self.budget.held:
                self.core.stop_for_budget(projected)
            self.planner.resend(pack)
            return None
        return _Line(f"p{number}", request, pack, size, projected or 0.0)

    async def _submit(self, draft: _Draft) -> bool:
        """Record, then submit one batch; False when the provider did not take it."""
        record = {line.custom_id: _pack_record(line.pack) for line in draft.lines}
        rows: list[int] = []
        # Recorded before it is sent: a restart finds it even if this process dies waiting.
        self._commit(
            lambda: rows.append(self.store.insert_batch(self.provider.name, record, len(record), draft.size))
        )
        row = rows[0]
        projected = sum(line.projected for line in draft.lines)
        started = time.time()
        try:
            provider_batch_id = await self.api.submit_batch(
                [(line.custom_id, line.request) for line in draft.lines]
            )
        except ProviderError as exc:
            self._release(projected, count=len(draft.lines))
            for line in draft.lines:
                self.core.on_error(line.pack, exc, started)
            reason = str(exc)
            self._commit(lambda: self.store.finish_batch(row, "abandoned", error=reason))
            self._submit_failures += 1
            self._submit_after = self.clock() + self.policy.backoff.delay(
                self._submit_failures, self.core.rng
            )
            log.warning("submitting a batch of %d lines failed (%s): %s", len(record), exc.kind, exc)
            return False
        self._submit_failures = 0
        self._commit(lambda: self.store.batch_submitted(row, provider_batch_id))
        packs = {line.custom_id: line.pack for line in draft.lines}
        batch = _OpenBatch(
            row,
            provider_batch_id,
            packs,
            started,
            next_poll=self.clock() + self.poll.delay(0),
            projected=projected,
        )
        self._open[row] = batch
        self._held.update(batch.positions)
        self.batches_submitted += 1
        log.info("submitted batch %s: %d lines, %d bytes", provider_batch_id, len(record), draft.size)
        return True

    # -- polling -------------------------------------------------------------------------

    async def _poll_due(self) -> None:
        now = self.clock()
        due = [batch for batch in self._open.values() if batch.next_poll <= now]
        if not due:
            wake = min(batch.next_poll for batch in self._open.values())
            await self.sleep(max(0.0, wake - now))
            return
        for batch in due:
            await self._poll(batch)
            if self._halted:
                return

    async def _poll(self, batch: _OpenBatch) -> None:
        try:
            status = await self.api.poll_batch(batch.provider_batch_id)
            if not status.ended:
                batch.polls += 1
                batch.poll_failures = 0
                batch.next_poll = self.clock() + self.poll.delay(batch.polls)
                return
            results = await self.api.batch_results(batch.provider_batch_id)
        except ProviderError as exc:
            self._poll_failed(batch, exc)
            return
        self._apply(batch, status, results)

    def _poll_failed(self, batch: _OpenBatch, error: ProviderError) -> None:
        batch.poll_failures += 1
        if isinstance(error, FatalError) or batch.poll_failures >= self.policy.max_transient:
            self._halted = True
            self.core.stop_reason = (
                f"cannot follow batch {batch.provider_batch_id}: {error}; its items are kept waiting: "
                "run the same command again to re-attach to it"
            )
            return
        log.warning("polling batch %s failed (%s): %s", batch.provider_batch_id, error.kind, error)
        batch.next_poll = self.clock() + self.policy.backoff.delay(batch.poll_failures, self.core.rng)

    def _apply(
        self,
        batch: _OpenBatch,
        status: BatchStatus,
        results: Sequence[tuple[str, Completion | ProviderError]],
    ) -> None:
        """Join the results on custom_id and apply each line through the runner's outcome rules.

        No await in here: a cancelled run never holds half a result file.
        """
        latency = max(0.0, time.time() - batch.submitted)
        waiting = dict(batch.packs)
        for custom_id, outcome in results:
            pack = waiting.pop(custom_id, None)
            if pack is None:
                log.debug("batch %s: result for unknown line %r ignored", batch.provider_batch_id, custom_id)
                continue
            if isinstance(outcome, ProviderError):
                self.core.on_error(pack, outcome, batch.submitted)
            else:
                self.core.on_completion(
                    pack,
                    dataclasses.replace(outcome, latency=latency),
                    batch.submitted,
                    concurrency=len(self._open),
                )
        why = f"batch {status.status}" + (f": {status.message}" if status.message else "")
        for pack in waiting.values():
            self.core.on_error(pack, ServerError(f"no result for this line ({why})"), batch.submitted)
        self._held.difference_update(batch.positions)
        self._release(batch.projected, count=len(batch.packs))
        del self._open[batch.row]
        self._warm_at = self.clock()
        if batch.row == self._primer:
            self._primer = None
        self._commit(lambda: self.store.finish_batch(batch.row, "processed", status.status, status.message))
        log.info("batch %s %s: %d results", batch.provider_batch_id, status.status, len(results))


def submitted_batch_positions(store: JobStore) -> set[int]:
    """Positions of the items in batches the provider accepted and has not finished: what a
    ``BatchRunner`` re-attaches to, and so what another runner must not send meanwhile."""
    return {
        entry[0]
        for row in store.open_batches()
        if row.provider_batch_id is not None
        for record in row.packs.values()
        for entry in record["items"]
    }


def _pack_record(pack: Pack) -> dict[str, Any]:
    """What the store keeps of a pack: its items' positions and retry state."""
    return {
        "items": [[state.index, state.transient, int(state.boosted)] for state in pack.states],
        "failures": pack.failures,
    }
