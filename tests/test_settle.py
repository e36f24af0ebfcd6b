"""The outcome rules as tables: a pack and what came back in, a settlement out.

No store, provider, loop or clock: ``now`` and the rng are arguments.
"""

from __future__ import annotations

import random

import pytest

from llmbatch._engine.planner import ItemState, Pack
from llmbatch._engine.policy import RetryPolicy
from llmbatch._engine.settle import TRUNCATED, Settlement, settle_answers, settle_error, settle_unsendable
from llmbatch._exceptions import (
    BadRequest,
    CapacityUnavailable,
    ConnectionFailed,
    FatalError,
    ProviderError,
    RateLimited,
    RequestTimeout,
    ServerError,
)
from llmbatch._store.job import DONE, FAILED, PENDING
from llmbatch._types import Item, Outcome

POLICY = RetryPolicy()  # 3 answer attempts, 8 transient failures, split after 2 failures
NOW = 1000.0


def pack_of(size: int, *, attempts: int = 0, transient: int = 0, boosted: bool = False) -> Pack:
    return Pack(
        [
            ItemState(Item(i, f"r{i}", f"text {i}"), attempts=attempts, transient=transient, boosted=boosted)
            for i in range(size)
        ]
    )


def answered(
    pack: Pack, *outcomes: Outcome, truncated: bool = False, cost: float | None = None
) -> Settlement:
    by_key = {state.item.key: outcome for state, outcome in zip(pack.states, outcomes, strict=True)}
    return settle_answers(pack, by_key, truncated=truncated, cost=cost, policy=POLICY)


def failed(pack: Pack, error: ProviderError, *, unreachable_for: float = 0.0) -> Settlement:
    return settle_error(
        pack, error, policy=POLICY, rng=random.Random(1), now=NOW, unreachable_for=unreachable_for
    )


def statuses(settled: Settlement) -> list[tuple[int, str, int]]:
    return [(u.index, u.status, u.attempts) for u in settled.updates]


def sizes(settled: Settlement) -> list[int]:
    return [r.pack.size for r in settled.resend]


OK = Outcome.ok({"label": "positive"})
MISSING = Outcome.missing()
INVALID = Outcome.invalid("not in the enum")


# -- answers ---------------------------------------------------------------------------------


def test_every_answer_good_settles_every_item_done_with_its_share_of_the_cost() -> None:
    settled = answered(pack_of(2), OK, OK, cost=0.5)
    assert statuses(settled) == [(0, DONE, 1), (1, DONE, 1)]
    assert [u.cost for u in settled.updates] == [0.25, 0.25]
    assert [state.index for _, state in settled.done] == [0, 1]
    assert (settled.ok, settled.ok_first, settled.first_tries, settled.retried) == (2, 2, 2, 0)
    assert not settled.resend and not settled.retry and not settled.failed


@pytest.mark.parametrize(
    ("attempts", "outcome", "expected", "kind"),
    [
        (0, MISSING, (0, PENDING, 1), None),  # first miss: re-packed smaller
        (1, INVALID, (0, PENDING, 2), None),  # second: once more (the last goes alone)
        (2, MISSING, (0, FAILED, 3), "missing"),  # the third is the last attempt
        (2, INVALID, (0, FAILED, 3), "invalid"),
    ],
)
def test_a_bad_answer_is_retried_until_its_attempts_are_used_up(
    attempts: int, outcome: Outcome, expected: tuple[int, str, int], kind: str | None
) -> None:
    pack = pack_of(1, attempts=attempts)
    settled = answered(pack, outcome)
    assert statuses(settled) == [expected]
    if kind is None:
        assert settled.retry == pack.states and settled.retried == 1 and not settled.failed
    else:
        assert not settled.retry and settled.failed == {kind: 1}
        assert settled.updates[0].error_kind == kind


def test_only_the_bad_item_of_a_pack_goes_again() -> None:
    pack = pack_of(3)
    settled = answered(pack, OK, MISSING, OK)
    assert statuses(settled) == [(0, DONE, 1), (2, DONE, 1), (1, PENDING, 1)]
    assert settled.retry == [pack.states[1]]
    assert pack.states[1].last_kind == "missing"
    assert settled.ok == 2


def test_a_cut_off_pack_is_split_whole_and_trusts_none_of_its_answers() -> None:
    pack = pack_of(4)
    settled = answered(pack, OK, OK, OK, OK, truncated=True)
    assert settled.updates == [] and settled.ok == 0
    assert settled.splits == 1 and sizes(settled) == [2, 2]
    assert all(r.at == 0.0 for r in settled.resend)
    assert settled.retried == 4
    assert all(s.attempts == 0 and s.last_error == TRUNCATED for s in pack.states)


def test_a_lone_cut_off_answer_goes_again_alone_with_a_boosted_budget_then_fails() -> None:
    pack = pack_of(1)
    settled = answered(pack, OK, truncated=True)
    assert statuses(settled) == [(0, PENDING, 1)]
    assert sizes(settled) == [1] and settled.resend[0].pack.boosted
    again = answered(settled.resend[0].pack, OK, truncated=True)
    assert statuses(again) == [(0, FAILED, 2)]
    assert again.failed == {"truncated": 1}


def test_a_retried_item_answered_is_done_but_not_a_first_try() -> None:
    settled = answered(pack_of(1, attempts=1), OK)
    assert statuses(settled) == [(0, DONE, 2)]
    assert (settled.ok, settled.ok_first, settled.first_tries, settled.attempt) == (1, 0, 0, 1)


# -- errors ----------------------------------------------------------------------------------


def test_a_rate_limit_pauses_every_sender_and_resends_the_pack_as_it_is() -> None:
    pack = pack_of(3)
    settled = failed(pack, RateLimited("slow down", retry_after=2.0))
    assert settled.pause == 2.0
    assert [r.pack for r in settled.resend] == [pack]
    assert settled.updates == [] and all(s.transient == 0 for s in pack.states)


@pytest.mark.parametrize("error", [ServerError("502"), RequestTimeout("timed out")])
def test_a_transient_error_retries_the_pack_then_splits_it_on_the_next(error: ProviderError) -> None:
    pack = pack_of(4)
    first = failed(pack, error)
    assert sizes(first) == [4] and first.resend[0].at >= NOW and first.splits == 0
    assert all(s.transient == 1 for s in pack.states)
    second = failed(first.resend[0].pack, error)
    assert second.splits == 1 and sizes(second) == [2, 2]
    assert all(s.transient == 2 for s in pack.states)


def test_an_item_that_lived_through_too_many_errors_fails_with_the_last_one() -> None:
    pack = pack_of(2, transient=POLICY.max_transient - 1)
    settled = failed(pack, ServerError("502 again"))
    assert statuses(settled) == [(0, FAILED, 0), (1, FAILED, 0)]
    assert settled.failed == {"server_error": 2}
    assert "gave up after repeated errors: 502 again" in settled.updates[0].error
    assert not settled.resend


def test_a_connection_failure_is_not_the_items_fault() -> None:
    pack = pack_of(2, transient=POLICY.max_transient - 1)
    settled = failed(pack, ConnectionFailed("refused"))
    assert settled.updates == [] and sizes(settled) == [2]
    assert all(s.transient == POLICY.max_transient - 1 for s in pack.states)


UNAVAILABLE = CapacityUnavailable("HTTP 429: Resource Unavailable", status=429)


def test_flex_without_capacity_resends_the_pack_later_uncounted_and_pauses_no_one() -> None:
    pack = pack_of(3, transient=POLICY.max_transient - 1)
    settled = failed(pack, UNAVAILABLE)
    assert settled.updates == [] and settled.pause is None and settled.splits == 0
    assert sizes(settled) == [3] and settled.resend[0].at >= NOW
    assert all(s.transient == POLICY.max_transient - 1 for s in pack.states)
    assert all(s.unavailable_since == NOW and not s.standard for s in pack.states)
    # Many in a row: still one pack (a smaller one meets the same shortage), still no failure.
    again = pack
    for _ in range(POLICY.split_after + 3):
        again = failed(again, UNAVAILABLE).resend[0].pack
    assert again.size == 3 and all(s.unavailable_since == NOW for s in again.states)


def _past_deadline(fallback: str) -> Settlement:
    policy = RetryPolicy(flex_deadline=60.0, flex_fallback=fallback)  # type: ignore[arg-type]
    pack = pack_of(3)
    pack.states[0].unavailable_since = NOW - 61.0  # met it a minute ago; the others just now
    return settle_error(pack, UNAVAILABLE, policy=policy, rng=random.Random(1), now=NOW)


def test_past_the_flex_deadline_a_straggler_falls_back_to_the_default_tier_at_once() -> None:
    settled = _past_deadline("sync")
    assert settled.fallen_back == 1 and settled.updates == []
    straggler, rest = settled.resend
    assert [s.index for s in straggler.pack.states] == [0] and straggler.at == 0.0
    assert straggler.pack.standard and not rest.pack.standard
    assert [s.index for s in rest.pack.states] == [1, 2] and rest.at >= NOW


@pytest.mark.parametrize(
    ("fallback", "says"), [("batch", "batch API next"), ("fail", "run the same command again")]
)
def test_past_the_flex_deadline_a_straggler_fails_as_unavailable_for_batch_or_for_good(
    fallback: str, says: str
) -> None:
    settled = _past_deadline(fallback)
    assert statuses(settled) == [(0, FAILED, 0)] and settled.failed == {"unavailable": 1}
    assert "no capacity for 60 s" in settled.updates[0].error and says in settled.updates[0].error
    assert sizes(settled) == [2] and settled.fallen_back == 0


def test_an_outage_that_lasts_stops_the_job_and_keeps_the_pack() -> None:
    pack = pack_of(2)
    settled = failed(pack, ConnectionFailed("refused"), unreachable_for=POLICY.outage_after)
    assert settled.stop is not None and "unreachable" in settled.stop
    assert [r.pack for r in settled.resend] == [pack] and settled.updates == []


def test_a_fatal_error_stops_the_job_and_keeps_the_pack() -> None:
    pack = pack_of(2)
    settled = failed(pack, FatalError("invalid api key"))
    assert settled.stop == "invalid api key"
    assert [r.pack for r in settled.resend] == [pack] and settled.updates == []


def test_a_rejected_pack_is_split_to_find_the_item_and_a_rejected_item_fails() -> None:
    split = failed(pack_of(2), BadRequest("bad"))
    assert split.splits == 1 and sizes(split) == [1, 1] and split.updates == []
    alone = failed(pack_of(1), BadRequest("bad"))
    assert statuses(alone) == [(0, FAILED, 0)]
    assert alone.failed == {"bad_request": 1}
    assert alone.updates[0].error.startswith("rejected by the provider")


def test_the_settlement_reads_attempt_and_first_tries_before_the_outcome_changes_them() -> None:
    settled = failed(pack_of(3), ServerError("502"))
    assert (settled.attempt, settled.first_tries) == (0, 3)


def test_an_unsendable_pack_is_split_and_an_unsendable_record_fails_as_too_large() -> None:
    split = settle_unsendable(pack_of(3), "needs more than the context")
    assert split.splits == 1 and sizes(split) == [1, 2] and split.updates == []
    assert all(r.at == 0.0 for r in split.resend)
    alone = settle_unsendable(pack_of(1), "needs more than the context")
    assert statuses(alone) == [(0, FAILED, 0)]
    assert alone.failed == {"too_large": 1} and alone.updates[0].error == "needs more than the context"
