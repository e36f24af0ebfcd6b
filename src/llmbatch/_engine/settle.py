"""The outcome rules: what one request's answer or error means for each of its items.

``settle_answers`` and ``settle_error`` decide, for the items of one pack, which are
done, which go again (re-packed with others, resent as they are, or split) and which
fail for good, and return that as a ``Settlement``. They do no I/O: no store, provider,
clock or loop. A runner applies a settlement (one store transaction, the planner's
queues, the metrics and the cache) and decides only *when* to commit, so the sync
runner and the batch runner share these rules, and a rule is tested as a table::

    >>> from llmbatch._engine.planner import ItemState, Pack
    >>> from llmbatch._engine.policy import RetryPolicy
    >>> from llmbatch._types import Item, Outcome
    >>> pack = Pack([ItemState(Item(0, "review-1", "text"))])
    >>> s = settle_answers(pack, {pack.items[0].key: Outcome.missing()}, truncated=False,
    ...                    cost=None, policy=RetryPolicy())
    >>> [(str(u.status), u.attempts) for u in s.updates], len(s.retry)
    ([('pending', 1)], 1)

The item states of the pack are the planner's own working objects: settling updates
their counters (attempts, transient failures, the boosted budget, the last error) in
place, as the planner would read them for the next pack.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from .._exceptions import CapacityUnavailable, ConnectionFailed, ProviderError
from .._store.job import ItemUpdate
from .._types import FailureKind, ItemStatus, Outcome
from .planner import ItemState, Pack
from .policy import Fail, Retry, RetryPolicy, Split, Stop, Wait

__all__ = ["TRUNCATED", "Resend", "Settlement", "settle_answers", "settle_error", "settle_unsendable"]

TRUNCATED = "answer truncated (finish_reason length)"


@dataclass(frozen=True, slots=True)
class Resend:
    """Send ``pack`` again as it is, not before ``at`` (clock time; 0: at once)."""

    pack: Pack
    at: float = 0.0


@dataclass(slots=True)
class Settlement:
    """What one request settled; the runner applies it."""

    attempt: int
    """The request's attempt number (0 = first try), read before the outcome changed the items."""
    first_tries: int
    """Items of the pack on their very first request, read before the outcome changed them."""
    updates: list[ItemUpdate] = field(default_factory=list)
    """The items' new rows, committed with the request's row in one transaction."""
    done: list[tuple[ItemUpdate, ItemState]] = field(default_factory=list)
    """The items answered, with their states (their texts key the result cache)."""
    resend: list[Resend] = field(default_factory=list)
    retry: list[ItemState] = field(default_factory=list)
    """Items to re-pack with others on the same attempt (smaller packs, the last alone)."""
    failed: Counter[str] = field(default_factory=Counter)
    """Items failed for good, by failure kind."""
    splits: int = 0
    ok: int = 0
    ok_first: int = 0
    """Items answered on their first try (the pack-size controller's signal)."""
    retried: int = 0
    fallen_back: int = 0
    """``--mode flex``: items sent again at the default tier (``--flex-fallback sync``)."""
    pause: float | None = None
    """Seconds every sender waits (a rate limit) before the resent pack goes."""
    stop: str | None = None
    """Why the job must stop (nothing sent now can succeed); the pack is kept for the resume."""

    def fail(self, state: ItemState, reason: str, kind: str) -> None:
        self.updates.append(ItemUpdate(state.index, ItemStatus.FAILED, state.attempts, None, reason, kind))
        self.failed[kind] += 1

    def split(self, pack: Pack, at: float) -> None:
        self.splits += 1
        self.resend.extend(Resend(half, at) for half in pack.halves() if half.states)


def _begin(pack: Pack) -> Settlement:
    return Settlement(
        attempt=max(s.attempts for s in pack.states),
        first_tries=sum(s.attempts == 0 and s.transient == 0 for s in pack.states),
    )


def settle_answers(
    pack: Pack,
    outcomes: Mapping[str, Outcome],
    *,
    truncated: bool,
    cost: float | None,
    policy: RetryPolicy,
) -> Settlement:
    """An answered request: ``outcomes`` by item key, as the pack format parsed them.

    ``truncated``: the answer was cut off (finish_reason ``length``); ``cost``: the
    request's, shared evenly by the items it answered.
    """
    settled = _begin(pack)
    share = None if cost is None else cost / pack.size
    redo: list[ItemState] = []
    for state in pack.states:
        outcome = outcomes[state.item.key]
        if outcome.status == "ok" and not truncated:
            settled.ok += 1
            settled.ok_first += state.attempts == 0 and state.transient == 0
            update = ItemUpdate(state.index, ItemStatus.DONE, state.attempts + 1, outcome.answer, cost=share)
            settled.updates.append(update)
            settled.done.append((update, state))
            continue
        # A cut answer is trusted for no item: its lost tail may have held the line
        # that shows an earlier answer under this key to be another item's
        # (a misnumbered answer is only caught when its key is seen twice).
        if outcome.status == "ok":
            outcome = Outcome.invalid(TRUNCATED)
        state.last_error, state.last_kind = outcome.reason, outcome.status
        redo.append(state)
    if truncated and redo:
        _after_truncation(Pack(redo), settled, policy)
    else:
        for state in redo:
            _after_bad_answer(state, settled, policy)
    return settled


def _after_bad_answer(state: ItemState, settled: Settlement, policy: RetryPolicy) -> None:
    """A missing or invalid answer: retry smaller, or fail when attempts are used up."""
    state.attempts += 1
    if policy.item_exhausted(state.attempts):
        kind = (
            state.last_kind
            if state.last_kind in (FailureKind.MISSING, FailureKind.INVALID)
            else FailureKind.INVALID
        )
        settled.fail(state, state.last_error, kind)
        return
    settled.updates.append(
        ItemUpdate(state.index, ItemStatus.PENDING, state.attempts, error=state.last_error)
    )
    settled.retry.append(state)
    settled.retried += 1


def _after_truncation(pack: Pack, settled: Settlement, policy: RetryPolicy) -> None:
    decision = policy.on_truncated(size=pack.size, boosted=pack.boosted, attempts=pack.states[0].attempts)
    if isinstance(decision, Split):
        # Not the items' fault: the pack asked for more than its budget.
        settled.split(pack, 0.0)
        settled.retried += pack.size
        return
    if isinstance(decision, Retry):
        state = pack.states[0]
        state.boosted = True
        state.attempts += 1
        settled.updates.append(
            ItemUpdate(state.index, ItemStatus.PENDING, state.attempts, error=state.last_error)
        )
        settled.resend.append(Resend(Pack([state])))
        settled.retried += 1
        return
    assert isinstance(decision, Fail)
    for state in pack.states:
        state.attempts += 1
        settled.fail(state, decision.reason, decision.kind)


def settle_error(
    pack: Pack,
    error: ProviderError,
    *,
    policy: RetryPolicy,
    rng: random.Random,
    now: float,
    unreachable_for: float = 0.0,
) -> Settlement:
    """A request that failed with ``error`` at ``now`` (clock time).

    ``unreachable_for``: seconds of nothing but connection failures (the policy stops the
    job after its outage limit).
    """
    settled = _begin(pack)
    pack.failures += 1
    decision = policy.on_error(
        error, size=pack.size, failures=pack.failures, rng=rng, unreachable_for=unreachable_for
    )
    if isinstance(decision, Stop):
        settled.stop = decision.reason
        settled.resend.append(Resend(pack))
    elif isinstance(decision, Wait):
        settled.pause = decision.delay
        settled.resend.append(Resend(pack))
    elif isinstance(decision, Fail):
        for state in pack.states:
            settled.fail(state, decision.reason, decision.kind)
    elif isinstance(error, CapacityUnavailable):
        _after_unavailable(pack, settled, policy, now, decision.delay)
    else:
        survivors = _count_transient(pack, error, settled, policy)
        if survivors:
            if isinstance(decision, Split) and len(survivors) > 1:
                settled.split(Pack(survivors), now + decision.delay)
            else:
                settled.resend.append(Resend(Pack(survivors, failures=pack.failures), now + decision.delay))
    return settled


def _after_unavailable(
    pack: Pack, settled: Settlement, policy: RetryPolicy, now: float, delay: float
) -> None:
    """Flex had no capacity: the items wait their backoff and go again, uncounted (not their
    fault, and no failure budget of theirs is spent); those that have met it for longer than
    ``flex_deadline`` take the fallback."""
    waiting: list[ItemState] = []
    late: list[ItemState] = []
    for state in pack.states:
        if state.unavailable_since is None:
            state.unavailable_since = now
        (late if now - state.unavailable_since >= policy.flex_deadline else waiting).append(state)
    if late and policy.flex_fallback == "sync":
        for state in late:
            state.standard, state.unavailable_since = True, None
        settled.fallen_back += len(late)
        settled.resend.append(Resend(Pack(late)))  # at once, at the default tier
    elif late:
        moved = (
            "sent through the batch API next (--flex-fallback batch)"
            if policy.flex_fallback == "batch"
            else "run the same command again to retry, or pass --flex-fallback sync or batch"
        )
        reason = (
            f"flex processing had no capacity for {policy.flex_deadline:g} s "
            f"(429 resource unavailable, --flex-deadline): {moved}"
        )
        for state in late:
            settled.fail(state, reason, FailureKind.UNAVAILABLE)
    if waiting:
        settled.resend.append(Resend(Pack(waiting, failures=pack.failures), now + delay))


def _count_transient(
    pack: Pack, error: ProviderError, settled: Settlement, policy: RetryPolicy
) -> list[ItemState]:
    """The items that live through one more transient failure; the rest fail."""
    if isinstance(error, ConnectionFailed):
        # Not the items' fault and not theirs to fail for: an outage that lasts stops the job.
        return list(pack.states)
    survivors: list[ItemState] = []
    for state in pack.states:
        state.transient += 1
        if state.transient >= policy.max_transient:
            settled.fail(state, f"gave up after repeated errors: {error}", error.kind)
        else:
            survivors.append(state)
    return survivors


def settle_unsendable(pack: Pack, reason: str) -> Settlement:
    """A pack too large to send (the model's context, a minute's token limit, a batch's
    bytes): split it, or fail its lone item as ``too_large``. Nothing was sent."""
    settled = _begin(pack)
    if pack.size > 1:
        settled.split(pack, 0.0)
    else:
        settled.fail(pack.states[0], reason, FailureKind.TOO_LARGE)
    return settled
