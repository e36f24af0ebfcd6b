"""The synchronous runner: packs sent request by request, as fast as the limits allow.

    (ingest: input → store)  →  plan packs  →  budget, limiter  →  provider
    →  parse  →  settle  →  store (one transaction per request)  →  output

The items' side (loading, rendering, the outcome rules, writing) is ``RunCore``, shared
with the batch runner; what is here is how packs travel: the dispatch loop, the budget
and the rate limiter around each request, and the controllers (pack size, concurrency,
answer budget) steered by each answer. Every item ends ``done`` or ``failed``; the
dispatcher stops only when the planner holds nothing and no request is in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from .._exceptions import (
    ProviderError,
    RateLimited,
    RequestTimeout,
)
from .._gates.limiter import Limiter, RateLimiter, Reservation, TokenBucket
from .._metrics import Metrics
from .._options import RunOptions
from .._pack import PER_ITEM_OVERHEAD, choose_packer, shared_prefix_tokens
from .._pack.tokens import MESSAGE_OVERHEAD, count_tokens
from .._pricing import Price
from .._store.cache import Cache
from .._store.job import ItemUpdate, JobStore
from .._task import Task
from .._types import Completion, Item, LimitName, Request
from ..providers.base import Provider
from .core import RunCore
from .pack_plan import JobShape, allowance_requests, best_pack_size, burst_ready
from .planner import Pack
from .settle import Settlement
from .steering import Clock, Sleep, Steering

__all__ = ["Runner"]

log = logging.getLogger("llmbatch")

UNSENT_PACKS = 2
"""Most packs made but not yet sent (waiting for the rate limiter): enough that the limit
is never left idle, few enough that packs are made at the size (and with the retries) of now."""


class Runner:
    """Runs every pending item of a job's store through a provider, request by request.

    >>> runner = Runner(task, provider, store, RunOptions())  # doctest: +SKIP
    >>> metrics = await runner.run()                           # doctest: +SKIP

    The items' side (loading, rendering, the outcome rules, writes) is its ``core``
    (``RunCore``); what is here is how packs travel: the dispatch loop, the rate limiter
    and the budget around each request, and the controllers steered by each answer.
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
        limiter: Limiter | None = None,
        cache: Cache | None = None,
        on_settled: Callable[[Sequence[ItemUpdate]], None] | None = None,
        steering: Steering | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        exclude: Collection[int] = (),
    ) -> None:
        self.task = task
        self.provider = provider
        self.store = store
        self.options = options
        self.clock = clock
        self.sleep = sleep
        self.metrics = metrics or Metrics(clock=clock)
        self.limiter = limiter or RateLimiter(rpm=options.rpm, tpm=options.tpm, clock=clock, sleep=sleep)
        self.packer = choose_packer(options.pack or provider.default_pack, task, provider)
        self.steering = steering or Steering.start(task, options, clock, self._blank_prompt_tokens)
        self.sizer = self.steering.sizer
        self.flow = self.steering.flow
        self.calibration = self.steering.calibration
        self.answers = self.steering.answers
        self.need = self.steering.need
        self.plan = self.steering.plan
        self.best_latency = self.steering.best_latency
        self.core = RunCore(
            task,
            provider,
            store,
            options,
            self.packer,
            self.limiter,
            self.steering.calibration,
            price=price,
            metrics=self.metrics,
            cache=cache,
            on_settled=on_settled,
            clock=clock,
            exclude=exclude,
        )
        self.budget = self.core.budget
        self.planner = self.core.planner
        self._prefix_tokens: int | None = None
        self.warm_up = steering is None and (
            provider.capabilities.warm_up_first or self._cacheable(provider.capabilities.cache_min_prefix)
        )
        """Send one request alone before fanning out, so that the rest read the provider's cache
        (not when steering is handed on: the runner before this one warmed it)."""
        self._unsent = 0
        """Packs made but not yet sent (waiting for the budget or the rate limiter)."""
        self._unsent_moved = asyncio.Event()
        """Set (and replaced) each time one of them is sent or dropped."""
        self.in_flight = 0
        self.flex = options.mode == "flex"
        """Ask for the flex tier (``--mode flex``), except for packs that fell back from it."""

    @property
    def stop_reason(self) -> str | None:
        return self.core.stop_reason

    @property
    def concurrency(self) -> int:
        return self.flow.limit

    @property
    def batch_size(self) -> int:
        return self.sizer.size

    async def run(self) -> Metrics:
        """Send every pending item; returns the metrics. Raises FatalError if the job had to stop."""
        return await self.core.run(self._dispatch)

    # -- the dispatch loop ---------------------------------------------------------

    async def _dispatch(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            await self._dispatch_all(tasks)
        finally:
            if tasks:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _dispatch_all(self, tasks: set[asyncio.Task[None]]) -> None:
        while self.core.stop_reason is None:
            if len(tasks) >= self._allowed_in_flight():
                await self._wait_any(tasks)
                continue
            if self._unsent >= UNSENT_PACKS:
                # Late binding: a pack is made when it can soon be sent (not a
                # concurrency's worth ahead, waiting for the rate limiter), so it has
                # the size the controller wants now and retries are not queued behind it.
                await self._wait_any(tasks, wake=self._unsent_moved)
                continue
            now = self.clock()
            pack = self.planner.next_pack(self.batch_size, now)
            if pack is None:
                if tasks:
                    await self._wait_any(tasks, self._until_ready(now))
                    continue
                ready_at = self.planner.next_ready_at()
                if ready_at is None and self.planner.idle:
                    return
                await self.sleep(max(0.0, (ready_at or now) - now))
                continue
            self.metrics.pack_size, self.metrics.concurrency = self.batch_size, self.concurrency
            self._unsent += 1
            task = asyncio.create_task(self._send(pack))
            tasks.add(task)
        # stopping: let requests in flight finish so their answers are kept
        while tasks:
            await self._wait_any(tasks)

    def _cacheable(self, min_prefix: int | None) -> bool:
        """Whether the provider caches the prefix of this job's first packs by itself."""
        if min_prefix is None:
            return False
        blanks = [Item(i, str(i), "") for i in range(self.sizer.size)]
        return shared_prefix_tokens(self.packer.render(self.task, blanks)) >= min_prefix

    def _allowed_in_flight(self) -> int:
        """The concurrency limit; 1 until the first answer when the provider's cache wants a warm-up."""
        if self.warm_up and self.metrics.requests_ok == 0:
            return 1
        return self.concurrency

    def _until_ready(self, now: float) -> float | None:
        ready_at = self.planner.next_ready_at()
        return None if ready_at is None else max(0.0, ready_at - now)

    async def _wait_any(
        self,
        tasks: set[asyncio.Task[None]],
        timeout: float | None = None,
        wake: asyncio.Event | None = None,
    ) -> None:
        """Until a task ends (or ``timeout`` passes, or ``wake`` is set)."""
        waker = None if wake is None else asyncio.ensure_future(wake.wait())
        waiting: set[asyncio.Future[Any]] = set(tasks) if waker is None else {*tasks, waker}
        try:
            done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if waker is not None:
                waker.cancel()
        done.discard(waker)
        for task in done:
            tasks.discard(task)
            task.result()  # a bug in _send must surface, not vanish

    # -- one request ---------------------------------------------------------------

    async def _send(self, pack: Pack) -> None:
        """One request of ``pack`` (counted in ``_unsent`` by the dispatcher until it goes)."""
        try:
            prepared = await self._prepare(pack)
        finally:
            self._unsent -= 1
            self._unsent_moved.set()
            self._unsent_moved = asyncio.Event()
        if prepared is None:
            return
        request, reservation, projected = prepared
        settled = False
        try:
            await self._call(pack, request, reservation)
            settled = True
        finally:
            # A request cancelled in flight was sent and may be charged: its reservation stays
            # in the journal, and the next run counts it as spent.
            if self.budget is not None and projected is not None and settled:
                self.budget.release(projected)

    async def _prepare(self, pack: Pack) -> tuple[Request, Reservation, float | None] | None:
        """Render ``pack`` and clear it with the budget and the limiter; None when it is not sent."""
        if pack.boosted:
            budget = self.task.answer_budget * self.options.policy.budget_boost
        else:
            budget = max(1, self.answers.per_item() - PER_ITEM_OVERHEAD)
        request = self.core.render(pack, budget)
        if request is None:
            return None
        if self.flex and not pack.standard:
            request = dataclasses.replace(request, service_tier="flex")
        self._fit(request.system, request.est_prompt_tokens, request.max_tokens, pack.size)
        self.plan.sent(pack.size, request.est_prompt_tokens)
        estimate = self.core.calibration.correct(request.est_prompt_tokens)
        projected = self.core.projected_cost(estimate, request.max_tokens)
        if projected is not None and not await self._reserve_budget(projected):
            self.planner.resend(pack)
            return None
        try:
            reservation = await self.limiter.acquire(estimate, request.max_tokens)
        except BaseException:
            if self.budget is not None and projected is not None:
                self.budget.release(projected)
            raise
        return request, reservation, projected

    async def _reserve_budget(self, projected: float) -> bool:
        """Reserve a request's worst case against ``--max-cost``; False (the job stopping) if it
        never fits — after the requests in flight have settled and released theirs."""
        assert self.budget is not None
        if await self.budget.reserve(projected, stopped=lambda: self.stop_reason is not None):
            return True
        self.core.stop_for_budget(projected)
        return False

    async def _call(self, pack: Pack, request: Request, reservation: Reservation) -> None:
        started = time.time()
        self.in_flight += 1
        try:
            completion = await self.provider.complete(request)
        except ProviderError as exc:
            self.limiter.release(reservation)
            self.limiter.observe_headers(exc.headers)
            self._on_error(pack, exc, started)
            return
        finally:
            self.in_flight -= 1
        usage = completion.usage
        self.core.calibration.observe(request.est_prompt_tokens, usage.prompt_tokens)
        can = self.provider.capabilities
        charged_prompt = usage.prompt_tokens
        if not can.cache_reads_count_toward_limit:
            charged_prompt -= usage.cached_tokens
        self.limiter.settle(
            reservation, charged_prompt, usage.completion_tokens, refund_output=can.refunds_unused_output
        )
        charged = charged_prompt + (
            usage.completion_tokens if can.refunds_unused_output else request.max_tokens
        )
        self.need.observe(latency=completion.latency, charged=charged)
        self.limiter.observe_headers(completion.headers)
        self._learn_answer_size(pack, completion, request.max_tokens)
        self._on_completion(pack, completion, started, flex=request.service_tier == "flex")

    def _fit(self, system: str, prompt_tokens: int, max_tokens: int, size: int) -> None:
        """Cap the pack size at what fits the model's context and the token limit."""
        if self._prefix_tokens is None:
            self._prefix_tokens = count_tokens(system) + 2 * MESSAGE_OVERHEAD
        per_item = max(1, prompt_tokens - self._prefix_tokens) / size + max_tokens / size
        room = self.provider.capabilities.context_tokens
        tokens = self.limiter.buckets.get(LimitName.TOKENS)
        if tokens is not None:
            room = min(room, int(tokens.capacity))
        self.sizer.fit(int((room - self._prefix_tokens - 16) / per_item))

    def _learn_answer_size(self, pack: Pack, completion: Completion, max_tokens: int) -> None:
        """What a pack's answers used sizes the next packs' ``max_tokens`` (charged against TPM)."""
        if pack.boosted:
            return  # a lone retry with a boosted budget says nothing of the usual answer
        if completion.finish_reason == "length":
            self.answers.on_truncated(max_tokens, pack.size)
        elif completion.finish_reason == "stop":
            self.answers.observe(completion.usage.completion_tokens, pack.size)

    def _on_completion(self, pack: Pack, completion: Completion, started: float, *, flex: bool) -> None:
        def steer(settled: Settlement) -> None:
            self._steer(pack.size, completion.latency, settled.ok_first, settled.ok)

        self.core.on_completion(
            pack, completion, started, concurrency=self.concurrency, steer=steer, flex=flex
        )

    def _steer(self, size: int, latency: float, ok_first: int, ok: int) -> None:
        """Feed the controllers with one successful request."""
        best = self.best_latency.get(size)
        if best is None or latency < best:
            self.best_latency[size] = latency
        self.plan.answered(size, latency)
        buckets = self.limiter.buckets
        requests, tokens = buckets.get(LimitName.REQUESTS), buckets.get(LimitName.TOKENS)
        need = self.need.of(
            request_rate=None if requests is None else requests.rate,
            token_rate=None if tokens is None else tokens.rate,
        )
        shape = self._job_shape(requests, tokens)
        planned = best_pack_size(shape, self.sizer.max_batch) if self.sizer.adaptive else self.batch_size
        if need is not None and burst_ready(shape, self.batch_size, planned):
            # Little's law holds at the refill rate; what the allowance left admits may go
            # at once (a short job: all of it).
            need = max(need, allowance_requests(shape, self.batch_size))
        self.flow.on_success(latency, best, need)
        self.sizer.observe(
            size=size, ok_first=ok_first, ok=ok, latency=latency, limited=self.limiter.in_debt()
        )
        self.sizer.plan(planned)

    def _job_shape(self, requests: TokenBucket | None, tokens: TokenBucket | None) -> JobShape:
        """The rest of the job as the pack-size plan sees it (``pack_plan``)."""
        now = self.clock()
        answer = self.answers.per_item()
        ratio = self.core.calibration.ratio
        plan = self.plan
        metrics = self.metrics
        latency = plan.latency.line() or (1.0, 0.0)

        def charge(size: int) -> float:
            return plan.prompt_tokens(size) * ratio + size * answer + 16

        return JobShape(
            remaining=metrics.items_total - metrics.items_ok - metrics.items_failed_total,
            charge=charge,
            latency=lambda size: latency[0] + latency[1] * size,
            # Once limits are known the concurrency ramps to what they call for; until then it
            # is what it has reached.
            concurrency=self.flow.cap if requests is not None or tokens is not None else self.flow.limit,
            cpu_per_request=plan.cpu_per_request,
            request_rate=None if requests is None else requests.rate,
            token_rate=None if tokens is None else tokens.rate,
            request_level=0.0 if requests is None else requests.available(now),
            token_level=0.0 if tokens is None else tokens.available(now),
        )

    def _blank_prompt_tokens(self, size: int) -> int:
        """Prompt tokens of a pack of ``size`` empty records: its fixed part."""
        blanks = [Item(i, str(i), "") for i in range(size)]
        return self.packer.render(self.task, blanks).est_prompt_tokens

    def _on_error(self, pack: Pack, error: ProviderError, started: float) -> None:
        if isinstance(error, (RateLimited, RequestTimeout)):
            self.flow.on_pressure(self.best_latency.get(pack.size, 1.0))
        self.core.on_error(pack, error, started)
