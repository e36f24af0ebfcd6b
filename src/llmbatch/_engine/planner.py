"""Which items go into the next request.

Three sources, in order of priority:

1. packs that must be resent as they are (split halves, packs retried after a
   transient error) once their backoff has passed;
2. items whose answer was missing or invalid, re-packed with items of the same
   attempt count at a smaller size (the last attempt alone);
3. fresh items from the store, in input order (shuffled within a window when
   ``shuffle`` is on).

Only pending items are held in memory, and only a bounded window of them, so
memory does not grow with the size of the input.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .._store.job import PendingItem
from .._types import Item

__all__ = ["ItemState", "Pack", "Planner"]


@dataclass(slots=True, eq=False)
class ItemState:
    """One pending item and what it has been through."""

    item: Item
    attempts: int = 0
    """Answer attempts used (missing, invalid or truncated answers)."""
    transient: int = 0
    """Request failures lived through (timeouts, 5xx): not the item's fault."""
    boosted: bool = False
    """Retried alone with a larger answer budget after a truncation."""
    last_error: str = ""
    last_kind: str = ""
    unavailable_since: float | None = None
    """``--mode flex``: clock time of the first "resource unavailable" this item met, since
    it was last sent at the default tier."""
    standard: bool = False
    """``--mode flex``: fell back to the default tier (``--flex-fallback sync``)."""

    @property
    def index(self) -> int:
        return self.item.index


@dataclass(slots=True, eq=False)
class Pack:
    """Items sent together in one request."""

    states: list[ItemState]
    failures: int = 0
    """Consecutive transient failures of this very pack."""
    items: tuple[Item, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.items = tuple(s.item for s in self.states)

    @property
    def size(self) -> int:
        return len(self.states)

    @property
    def boosted(self) -> bool:
        return any(s.boosted for s in self.states)

    @property
    def standard(self) -> bool:
        """Sent at the default tier, not flex: one of its items fell back."""
        return any(s.standard for s in self.states)

    def halves(self) -> tuple[Pack, Pack]:
        middle = len(self.states) // 2
        return Pack(self.states[:middle]), Pack(self.states[middle:])


PageLoader = Callable[[int, int], list[PendingItem]]
"""(after index, limit) → pending items in input order."""


class Planner:
    """Hands out the next pack; knows every pending item the runner is not sending."""

    def __init__(
        self,
        load_page: PageLoader,
        *,
        retry_size: Callable[[int, int], int],
        page_size: int = 1000,
        shuffle: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self._load_page = load_page
        self._retry_size = retry_size
        self._page_size = page_size
        self._shuffle = shuffle
        self._rng = rng or random.Random(0)
        self._fresh: deque[ItemState] = deque()
        self._after = -1
        self._exhausted = False
        self._ready: deque[Pack] = deque()
        self._delayed: list[tuple[float, int, Pack]] = []
        self._seq = itertools.count()
        self._retry: dict[int, list[ItemState]] = {}

    # -- putting items back ------------------------------------------------------

    def resend(self, pack: Pack, at: float = 0.0, *, now: float = 0.0) -> None:
        """Send this pack again, as it is, not before ``at``."""
        if at <= now:
            self._ready.append(pack)
        else:
            heapq.heappush(self._delayed, (at, next(self._seq), pack))

    def retry(self, state: ItemState) -> None:
        """Re-pack this item with others on the same attempt."""
        self._retry.setdefault(state.attempts, []).append(state)

    # -- taking packs --------------------------------------------------------------

    def next_pack(self, batch_size: int, now: float) -> Pack | None:
        """The next pack to send now, or None when nothing is ready."""
        while self._delayed and self._delayed[0][0] <= now:
            self._ready.append(heapq.heappop(self._delayed)[2])
        if self._ready:
            return self._ready.popleft()
        self._fill()
        draining = self._exhausted and not self._fresh
        for attempts in sorted(self._retry, reverse=True):
            waiting = self._retry[attempts]
            size = self._retry_size(batch_size, attempts)
            if len(waiting) >= size or draining:
                taken, self._retry[attempts] = waiting[:size], waiting[size:]
                if not self._retry[attempts]:
                    del self._retry[attempts]
                return Pack(taken)
        if self._fresh:
            count = min(batch_size, len(self._fresh))
            return Pack([self._fresh.popleft() for _ in range(count)])
        return None

    def next_ready_at(self) -> float | None:
        """When the earliest delayed pack becomes ready."""
        return self._delayed[0][0] if self._delayed else None

    @property
    def idle(self) -> bool:
        """Nothing waits anywhere (the runner may still have packs in flight)."""
        self._fill()
        return not (self._ready or self._delayed or self._retry or self._fresh)

    def waiting_retries(self) -> int:
        return sum(len(v) for v in self._retry.values())

    def _fill(self) -> None:
        if self._fresh or self._exhausted:
            return
        rows = self._load_page(self._after, self._page_size)
        if not rows:
            self._exhausted = True
            return
        self._after = rows[-1].position
        states = [
            ItemState(Item(idx, item_id, text), attempts=attempts) for idx, item_id, text, attempts in rows
        ]
        if self._shuffle:
            # Positions within a pack affect answers; shuffling inside the page
            # spreads that effect over records, reproducibly for a given seed.
            self._rng.shuffle(states)
        self._fresh.extend(states)
