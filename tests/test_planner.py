"""Planner: which items go next — resends, then full retry pools, then fresh items, paged lazily."""

from __future__ import annotations

import random

from llmbatch import Item, RetryPolicy
from llmbatch._engine.planner import ItemState, Pack, Planner
from llmbatch._store.job import PendingItem

POLICY = RetryPolicy(max_attempts=3)


class Pages:
    """A fake store: pending items, served by keyset; records every call."""

    def __init__(self, count: int, *, attempts: dict[int, int] | None = None) -> None:
        attempts = attempts or {}
        self.rows = [PendingItem(i, f"id{i}", f"text {i}", attempts.get(i, 0)) for i in range(count)]
        self.calls: list[tuple[int, int]] = []

    def __call__(self, after: int, limit: int) -> list[PendingItem]:
        self.calls.append((after, limit))
        return [row for row in self.rows if row.position > after][:limit]


def planner(pages: Pages, *, page_size: int = 1000, shuffle: bool = False, seed: int = 0) -> Planner:
    return Planner(
        pages, retry_size=POLICY.retry_size, page_size=page_size, shuffle=shuffle, rng=random.Random(seed)
    )


def indexes(pack: Pack | None) -> list[int]:
    assert pack is not None
    return [state.index for state in pack.states]


def state(index: int, attempts: int = 0) -> ItemState:
    return ItemState(Item(index, f"id{index}", f"text {index}"), attempts=attempts)


def drain(plan: Planner, batch_size: int, now: float = 0.0) -> list[list[int]]:
    packs = []
    while (pack := plan.next_pack(batch_size, now)) is not None:
        packs.append(indexes(pack))
    return packs


# -- fresh items and paging -------------------------------------------------------------------


def test_fresh_items_in_input_order() -> None:
    plan = planner(Pages(7))
    assert drain(plan, 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert plan.idle


def test_pages_load_lazily() -> None:
    pages = Pages(12)
    plan = planner(pages, page_size=5)
    assert pages.calls == []  # nothing read until a pack is asked for
    assert indexes(plan.next_pack(3, 0.0)) == [0, 1, 2]
    assert pages.calls == [(-1, 5)]
    assert indexes(plan.next_pack(3, 0.0)) == [3, 4]  # the rest of the page; no early read
    assert pages.calls == [(-1, 5)]
    assert indexes(plan.next_pack(3, 0.0)) == [5, 6, 7]
    assert pages.calls == [(-1, 5), (4, 5)]
    assert drain(plan, 3) == [[8, 9], [10, 11]]
    assert pages.calls == [(-1, 5), (4, 5), (9, 5), (11, 5)]
    assert plan.next_pack(3, 0.0) is None
    assert plan.idle
    assert len(pages.calls) == 4  # exhausted: never asks again


def test_loaded_attempts_are_kept() -> None:
    plan = planner(Pages(2, attempts={1: 2}))
    pack = plan.next_pack(5, 0.0)
    assert pack is not None
    assert [s.attempts for s in pack.states] == [0, 2]
    assert pack.items == (Item(0, "id0", "text 0"), Item(1, "id1", "text 1"))


def test_empty_store() -> None:
    pages = Pages(0)
    plan = planner(pages)
    assert plan.next_pack(5, 0.0) is None
    assert plan.idle
    assert plan.next_ready_at() is None


# -- the order of sources ---------------------------------------------------------------------


def test_resent_packs_go_first() -> None:
    plan = planner(Pages(10))
    first = plan.next_pack(3, 0.0)
    assert first is not None
    plan.resend(first)
    assert indexes(plan.next_pack(3, 0.0)) == [0, 1, 2]
    assert indexes(plan.next_pack(3, 0.0)) == [3, 4, 5]


def test_resent_pack_is_sent_as_it_is() -> None:
    plan = planner(Pages(10))
    pack = Pack([state(8), state(2)], failures=2)
    plan.resend(pack, now=5.0)
    assert plan.next_pack(3, 5.0) is pack


def test_delayed_pack_waits_for_its_time() -> None:
    plan = planner(Pages(6))
    plan.resend(Pack([state(100)]), at=10.0, now=0.0)
    assert plan.next_ready_at() == 10.0
    assert indexes(plan.next_pack(2, 9.99)) == [0, 1]
    assert not plan.idle
    assert indexes(plan.next_pack(2, 10.0)) == [100]
    assert plan.next_ready_at() is None
    assert indexes(plan.next_pack(2, 10.0)) == [2, 3]


def test_delayed_packs_come_out_in_time_order() -> None:
    plan = planner(Pages(0))
    plan.resend(Pack([state(1)]), at=30.0, now=0.0)
    plan.resend(Pack([state(2)]), at=10.0, now=0.0)
    plan.resend(Pack([state(3)]), at=20.0, now=0.0)
    plan.resend(Pack([state(4)]), at=10.0, now=0.0)  # same time: first come first served
    assert plan.next_pack(5, 5.0) is None
    assert not plan.idle
    assert plan.next_ready_at() == 10.0
    assert drain(plan, 5, now=100.0) == [[2], [4], [3], [1]]
    assert plan.idle


def test_full_retry_pool_goes_before_fresh_items() -> None:
    plan = planner(Pages(20))
    for i in range(5):
        plan.retry(state(100 + i, attempts=1))
    assert plan.waiting_retries() == 5
    # retry_size(10, attempts=1) == 5: the pool is full
    assert indexes(plan.next_pack(10, 0.0)) == [100, 101, 102, 103, 104]
    assert plan.waiting_retries() == 0
    assert indexes(plan.next_pack(10, 0.0)) == list(range(10))


def test_resends_go_before_retry_pools() -> None:
    plan = planner(Pages(5))
    plan.retry(state(100, attempts=2))  # last attempt: alone, always full
    plan.resend(Pack([state(200)]))
    assert drain(plan, 5) == [[200], [100], [0, 1, 2, 3, 4]]


def test_partial_retry_pool_waits_while_fresh_items_remain() -> None:
    plan = planner(Pages(7), page_size=4)
    for i in range(3):
        plan.retry(state(100 + i, attempts=1))  # needs 5 to be full at batch size 10
    assert indexes(plan.next_pack(10, 0.0)) == [0, 1, 2, 3]
    assert indexes(plan.next_pack(10, 0.0)) == [4, 5, 6]
    assert plan.waiting_retries() == 3
    # fresh source exhausted: the partial pool drains
    assert indexes(plan.next_pack(10, 0.0)) == [100, 101, 102]
    assert plan.next_pack(10, 0.0) is None
    assert plan.idle


def test_retry_pool_takes_only_its_size() -> None:
    plan = planner(Pages(0))
    for i in range(7):
        plan.retry(state(i, attempts=1))
    assert drain(plan, 6) == [[0, 1, 2], [3, 4, 5], [6]]  # retry_size(6, 1) == 3


def test_later_attempts_go_first_and_smaller() -> None:
    plan = planner(Pages(0))
    for i in range(4):
        plan.retry(state(i, attempts=1))
    for i in range(10, 12):
        plan.retry(state(i, attempts=2))
    assert drain(plan, 8) == [[10], [11], [0, 1, 2, 3]]


def test_idle_only_when_nothing_waits_anywhere() -> None:
    plan = planner(Pages(1))
    assert not plan.idle  # a fresh item
    assert indexes(plan.next_pack(5, 0.0)) == [0]
    assert plan.idle  # in flight is not the planner's business
    plan.retry(state(0, attempts=1))
    assert not plan.idle
    assert indexes(plan.next_pack(5, 0.0)) == [0]
    plan.resend(Pack([state(0)]), at=50.0, now=0.0)
    assert not plan.idle


# -- shuffling --------------------------------------------------------------------------------


def order(seed: int, *, page_size: int = 100, count: int = 40) -> list[int]:
    plan = planner(Pages(count), page_size=page_size, shuffle=True, seed=seed)
    return [i for pack in drain(plan, 7) for i in pack]


def test_shuffle_is_seeded_and_reproducible() -> None:
    assert order(3) == order(3)
    assert order(3) != order(4)
    assert order(3) != list(range(40))
    assert sorted(order(3)) == list(range(40))  # every item exactly once


def test_shuffle_stays_within_a_page() -> None:
    items = order(5, page_size=10)
    for page in range(4):
        assert sorted(items[page * 10 : page * 10 + 10]) == list(range(page * 10, page * 10 + 10))


def test_no_shuffle_keeps_input_order() -> None:
    plan = planner(Pages(20), page_size=6)
    assert [i for pack in drain(plan, 4) for i in pack] == list(range(20))


# -- packs ------------------------------------------------------------------------------------


def test_pack_halves() -> None:
    pack = Pack([state(i) for i in range(5)], failures=3)
    left, right = pack.halves()
    assert indexes(left) == [0, 1] and indexes(right) == [2, 3, 4]
    assert left.failures == right.failures == 0
    single = Pack([state(9)])
    assert [h.size for h in single.halves()] == [0, 1]


def test_pack_boosted_and_size() -> None:
    pack = Pack([state(0), state(1)])
    assert pack.size == 2 and not pack.boosted
    pack.states[1].boosted = True
    assert pack.boosted
