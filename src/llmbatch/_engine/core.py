"""What both runners share: one job's items on their way from the store and back.

``RunCore`` holds the job's task, store, pack format, planner, cache, budget and
metrics, and does the three things every pack goes through whichever way it travels:

- ``load_page``: the next pending items, cache hits stored as answered on the way;
- ``render``: the one prepare step, a pack as a request, or set aside (split, or its
  lone record failed as ``too_large``) when it can never be sent as it is;
- ``on_completion`` / ``on_error``: an answer or an error through the outcome rules
  (``settle``), and the resulting ``Settlement`` applied: metrics, re-queues, a pause,
  and its item updates and request row written through ``Writes``.

A runner composes one and decides only how packs travel and when writes commit: the
synchronous ``Runner`` sends each pack under the rate limiter and commits each request
at once; the ``BatchRunner`` sends packs as batch lines and commits a result file whole
(``Writes(held=True)``).

Why one module: these are the steps every pack goes through whichever way it travels,
and they share one state (the planner's queues, the budget, the metrics, the stop);
split further, each would reach into the others as the runners once reached into each
other.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence

from .._exceptions import (
    BudgetReached,
    ConnectionFailed,
    EndpointUnreachable,
    FatalError,
    ItemError,
    ProviderError,
    UsageError,
)
from .._gates.budget import Budget
from .._gates.limiter import Limiter
from .._metrics import Metrics
from .._options import RunOptions
from .._pack import PackFormat
from .._pack.tokens import Calibration
from .._pricing import Price
from .._store.cache import Cache
from .._store.job import DONE, ItemUpdate, JobStore, PendingItem, RequestRow
from .._task import Task
from .._types import Completion, Request, Usage
from ..providers.base import Provider
from .planner import Pack, Planner
from .settle import Settlement, settle_answers, settle_error, settle_unsendable
from .steering import Clock

__all__ = ["RunCore", "Writes"]

log = logging.getLogger("llmbatch")

Listener = Callable[[Sequence[ItemUpdate]], None]


class Writes:
    """Where the outcome rules' writes go: the store, in one transaction per call, or
    (``held``) kept until ``commit``, so that a batch's result file is applied whole or
    not at all. Listeners hear only committed updates."""

    def __init__(self, store: JobStore, on_settled: Listener | None = None, *, held: bool = False) -> None:
        self.store = store
        self.on_settled = on_settled
        self.held = held
        self._updates: list[ItemUpdate] = []
        self._requests: list[RequestRow] = []

    def write(self, updates: Sequence[ItemUpdate], request: RequestRow | None = None) -> None:
        """Item updates with the row of the request they came from (None: no request)."""
        if self.held:
            if request is not None:
                self._requests.append(request)
            self._updates.extend(updates)
            return
        if request is None:
            with self.store.transaction():
                self.store.update_items(updates)
        else:
            self.store.record_request(request, updates)
        self._tell(updates)

    def commit(self, also: Callable[[], None] | None = None) -> None:
        """Write what is held, and ``also`` (e.g. the batch's own row), in one transaction."""
        requests, updates = self._requests, self._updates
        self._requests, self._updates = [], []
        if not requests and not updates and also is None:
            return
        with self.store.transaction():
            for request in requests:
                self.store.insert_request(request)
            self.store.update_items(updates)
            if also is not None:
                also()
        self._tell(updates)

    def _tell(self, updates: Sequence[ItemUpdate]) -> None:
        if self.on_settled is not None and updates:
            self.on_settled(updates)


class RunCore:
    """One job's items through the outcome rules, for a runner that decides how they travel.

    ``batch_prices``: costs at the provider's batch price. ``journal``: the budget's
    reservations in flight are journalled in the store, so that a killed run's next run
    counts them as spent (batch mode has its batches table instead). ``held``: ``Writes``
    keeps writes until ``commit``.
    """

    def __init__(
        self,
        task: Task,
        provider: Provider,
        store: JobStore,
        options: RunOptions,
        packer: PackFormat,
        limiter: Limiter,
        calibration: Calibration,
        *,
        price: Price | None,
        metrics: Metrics,
        cache: Cache | None,
        on_settled: Listener | None,
        clock: Clock,
        batch_prices: bool = False,
        journal: bool = True,
        held: bool = False,
        exclude: Collection[int] = (),
    ) -> None:
        self.task = task
        self.provider = provider
        self.store = store
        self.options = options
        self.policy = options.policy
        self.packer = packer
        self.limiter = limiter
        self.calibration = calibration
        self.price = price
        self.metrics = metrics
        self.cache = cache
        self.clock = clock
        self.batch_prices = batch_prices
        self.exclude = exclude
        """Positions not to plan although pending (items in open batches)."""
        self.rng = random.Random(options.seed)
        self.writes = Writes(store, on_settled, held=held)
        self.planner = Planner(
            self.load_page,
            retry_size=self.policy.retry_size,
            shuffle=options.shuffle,
            rng=random.Random(options.seed),
        )
        self.stop_reason: str | None = None
        self.stop_error: type[FatalError] = FatalError
        self.budget_reached = False
        self._unreachable_since: float | None = None
        """When the connection failures began that no answer from the endpoint has followed."""
        if options.max_cost is not None and price is None:
            raise UsageError(
                f"--max-cost needs the price of model {provider.model!r}; add it with --prices FILE"
            )
        metrics.budget = options.max_cost
        self.budget = (
            None
            if options.max_cost is None
            else Budget(
                options.max_cost,
                spent=lambda: metrics.spent_before + metrics.cost,
                journal=self._journal_reserved if journal else None,
            )
        )

    # -- a whole run -------------------------------------------------------------------

    async def run(self, loop: Callable[[], Awaitable[None]]) -> Metrics:
        """Run ``loop`` (the runner's own) over the job's pending items; the metrics.
        Raises ``BudgetReached`` or a ``FatalError`` if the job had to stop."""
        counts = self.store.counts()
        first_stage = not self.metrics.started  # a cascade runs several runners on one Metrics
        self.metrics.items_total = sum(counts.values())
        self.metrics.items_ok = counts.get(DONE, 0)
        self.metrics.items_failed = Counter(self.store.failures_by_kind())
        if first_stage:
            self.metrics.items_skipped = counts.get(DONE, 0)
            self.metrics.spent_before = self.store.request_totals()["cost"] + self._unsettled_before()
            self.metrics.start()
        try:
            await loop()
        finally:
            self.metrics.finish()
        if self.stop_reason is not None:
            if self.budget_reached:
                raise BudgetReached(self.stop_reason)
            raise self.stop_error(self.stop_reason)
        return self.metrics

    def _journal_reserved(self, amount: float) -> None:
        self.store.set_meta("budget_in_flight", amount)

    def _unsettled_before(self) -> float:
        """Worst cases of requests earlier runs sent but never settled (killed or interrupted
        while they were in flight): counted as spent, since the provider may have charged them."""
        left = float(self.store.get_meta("budget_in_flight") or 0.0)
        total = float(self.store.get_meta("budget_unsettled") or 0.0) + left
        if left:
            with self.store.transaction():
                self.store.set_meta("budget_unsettled", total)
                self.store.set_meta("budget_in_flight", 0.0)
            log.warning(
                "the last run ended with requests in flight: their worst case ($%.4f) counts as spent", left
            )
        return total

    # -- in --------------------------------------------------------------------------

    def load_page(self, after: int, limit: int) -> list[PendingItem]:
        """The next pending items not answered by the cache (cache hits are stored as done)
        and not in ``exclude``."""
        while True:
            rows = self.store.pending(after, limit)
            if not rows:
                return rows
            kept = self._cache_misses(rows)
            if self.exclude:
                kept = [row for row in kept if row.position not in self.exclude]
            if kept:
                return kept
            after = rows[-1].position

    def _cache_misses(self, rows: list[PendingItem]) -> list[PendingItem]:
        if self.cache is None:
            return rows
        keys = [self.cache.key(row.text) for row in rows]
        hits = self.cache.get_many(keys)
        if not hits:
            return rows
        misses, updates = [], []
        for row, key in zip(rows, keys, strict=True):
            if key in hits:
                updates.append(ItemUpdate(row.position, DONE, row.attempts, hits[key]))
            else:
                misses.append(row)
        self.writes.write(updates)
        self.metrics.items_cached += len(updates)
        self.metrics.observe_items(ok=len(updates))
        return misses

    def render(self, pack: Pack, answer_tokens: int) -> Request | None:
        """The pack as a request, or None when it cannot be sent as it is: more than the
        model's context or a minute's token limit (set aside: split, or failed alone)."""
        request = self.packer.render(self.task, pack.items, answer_tokens=answer_tokens)
        prompt_tokens, max_tokens = self.calibration.correct(request.est_prompt_tokens), request.max_tokens
        context = self.provider.capabilities.context_tokens
        if prompt_tokens + max_tokens > context:
            self.set_aside(
                pack,
                f"the request needs ~{prompt_tokens + max_tokens} tokens, more than the model's "
                f"context of {context}",
            )
            return None
        try:
            self.limiter.check(prompt_tokens, max_tokens)
        except ItemError as exc:
            self.set_aside(pack, str(exc))
            return None
        return request

    def set_aside(self, pack: Pack, reason: str) -> None:
        """A pack too large to send: split it, or fail its lone item (``too_large``)."""
        self.apply(settle_unsendable(pack, reason))

    # -- money -----------------------------------------------------------------------

    def cost(self, usage: Usage, *, discounted: bool = False) -> float | None:
        """What ``usage`` costs; ``discounted``: at the batch price (a flex answer), as every
        request of a batch-mode runner is."""
        if self.price is None:
            return None
        return self.price.cost(usage, batch=self.batch_prices or discounted)

    def projected_cost(self, prompt_tokens: int, max_tokens: int) -> float | None:
        """The most a request can cost (its whole answer budget used), when a budget is set.
        A flex request is reserved at the full price too: it is priced by the tier its answer
        names, and a budget must hold whatever that is."""
        if self.budget is None:
            return None
        return self.cost(Usage(prompt_tokens=prompt_tokens, completion_tokens=max_tokens))

    def stop_for_budget(self, projected: float) -> None:
        if self.stop_reason is None and self.budget is not None:
            self.budget_reached = True
            self.stop_reason = self.budget.refusal(projected)

    # -- out -------------------------------------------------------------------------

    def on_completion(
        self,
        pack: Pack,
        completion: Completion,
        started: float,
        *,
        concurrency: int,
        steer: Callable[[Settlement], None] | None = None,
        flex: bool = False,
    ) -> Settlement:
        """An answer through the outcome rules, applied. ``started`` is the request's
        wall-clock start; ``steer`` (the runner's controllers) hears the settlement once it is
        applied and before the metrics count it, so the pack-size plan still counts this
        pack's records among the job's remaining ones. ``flex``: the request asked for the
        flex tier; it is priced at batch rates where the answer says flex processed it (OpenAI
        says so in every answer; a server that says nothing is priced as it always was)."""
        self._unreachable_since = None
        usage = completion.usage
        cost = self.cost(usage, discounted=flex and completion.service_tier == "flex")
        settled = settle_answers(
            pack,
            self.packer.parse(self.task, pack.items, completion),
            truncated=completion.finish_reason == "length",
            cost=cost,
            policy=self.policy,
        )
        row = RequestRow(
            started=started,
            finished=time.time(),
            keys=[s.index for s in pack.states],
            attempt=settled.attempt,
            status="ok",
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            latency=completion.latency,
            cost=cost,
            items_ok=settled.ok,
        )
        self.apply(settled, row)
        if self.cache is not None:
            self.cache.put_many((self.cache.key(state.item.text), u.answer) for u, state in settled.done)
        if steer is not None:
            steer(settled)
        self.metrics.observe_request(
            size=pack.size,
            latency=completion.latency,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cost=cost,
            concurrency=concurrency,
        )
        self.metrics.observe_items(
            ok=settled.ok,
            ok_first_try=settled.ok_first,
            first_tries=settled.first_tries,
            retried=settled.retried,
        )
        self.metrics.observe_model(self.provider.model, ok=settled.ok, cost=cost)
        return settled

    def on_error(self, pack: Pack, error: ProviderError, started: float) -> Settlement:
        """An error through the outcome rules, applied (a stop stops the job)."""
        settled = settle_error(
            pack,
            error,
            policy=self.policy,
            rng=self.rng,
            now=self.clock(),
            unreachable_for=self._unreachable_for(error),
        )
        self.metrics.observe_error(error.kind, size=pack.size, first_tries=settled.first_tries)
        if settled.stop is not None and self.stop_reason is None:
            self.stop_reason = settled.stop
            self.stop_error = EndpointUnreachable if isinstance(error, ConnectionFailed) else FatalError
        row = RequestRow(
            started=started,
            finished=time.time(),
            keys=[s.index for s in pack.states],
            attempt=settled.attempt,
            status="error",
            error_kind=error.kind,
            error=str(error)[:500],
        )
        self.apply(settled, row)
        log.debug("request of %d items failed (%s): %s", pack.size, error.kind, error)
        return settled

    def apply(self, settled: Settlement, row: RequestRow | None = None) -> None:
        """A settlement: metrics, a pause, re-queues, then its updates with its request's row
        (no row for a pack never sent) written in one transaction."""
        for kind, count in settled.failed.items():
            self.metrics.observe_failed(kind, count)
        self.metrics.splits += settled.splits
        self.metrics.flex_fallbacks += settled.fallen_back
        if settled.pause is not None:
            self.limiter.pause(settled.pause)
        now = self.clock()
        for resend in settled.resend:
            self.planner.resend(resend.pack, resend.at, now=now)
        for state in settled.retry:
            self.planner.retry(state)
        if settled.updates or row is not None:
            self.writes.write(settled.updates, row)

    def _unreachable_for(self, error: ProviderError) -> float:
        """Seconds the endpoint has been unreachable (0 once anything answered, even an error)."""
        if isinstance(error, ConnectionFailed):
            now = self.clock()
            if self._unreachable_since is None:
                self._unreachable_since = now
            return now - self._unreachable_since
        if error.status is not None:
            self._unreachable_since = None
        return 0.0
