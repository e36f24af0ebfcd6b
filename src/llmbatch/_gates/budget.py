"""``--max-cost``: a ledger of worst-case reservations against the job's budget.

Each request reserves its worst case (prompt + whole answer budget at the model's
price) before it is sent and releases it once it has settled, its actual cost
then counted in the spend. So the spend can never pass the budget. A request that
does not fit waits while others hold reservations — most use a fraction of their
answer budget, and their release makes room — and the job stops only when none
is in flight and it still does not fit: it ends within one request of the budget
rather than a concurrency's worth of worst cases below it.

The spend comes from a callable (the job's earlier runs plus this one), so the
budget covers the job over all its runs. The reservations are journalled into
the job's store: a run killed with requests in flight leaves their worst case
there, and the next run counts it as spent — the provider may have charged for
answers that never arrived — so no way of ending a run lets the job pass its budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Budget"]


class Budget:
    """Reservations against ``limit`` USD; ``spent()`` is what the job has paid so far."""

    __slots__ = ("_freed", "_holders", "_journal", "committed", "limit", "spent")

    def __init__(
        self, limit: float, spent: Callable[[], float], journal: Callable[[float], None] | None = None
    ) -> None:
        self.limit = limit
        self.spent = spent
        self._journal = journal
        """Hears the reserved total after each change (the runner keeps it in the job's store)."""
        self.committed = 0.0
        """Worst cases reserved by requests not yet settled (USD)."""
        self._holders = 0
        self._freed = asyncio.Event()
        """Set (and replaced) each time reservations are released."""

    @property
    def held(self) -> bool:
        """Whether any reservation is held (a settling request may still make room)."""
        return self._holders > 0

    def try_reserve(self, projected: float) -> bool:
        """Reserve ``projected`` if it fits now; False (reserving nothing) if not."""
        if self.spent() + self.committed + projected > self.limit:
            return False
        self.committed += projected
        self._holders += 1
        if self._journal is not None:
            self._journal(self.committed)
        return True

    async def reserve(self, projected: float, *, stopped: Callable[[], bool]) -> bool:
        """Reserve ``projected``, waiting while others hold reservations; False once it never can
        (nothing left in flight to make room) or the job is ``stopped()`` meanwhile."""
        while not stopped():
            if self.try_reserve(projected):
                return True
            if not self.held:
                return False
            await self._freed.wait()
        return False

    def release(self, projected: float, *, count: int = 1) -> None:
        """Give back ``count`` reservations totalling ``projected`` (their requests settled)."""
        self._holders -= count
        # Reset rather than subtract the last one: float sums leave a residue (1e-18)
        # that would look like a reservation still held, and waiters would wait forever.
        self.committed = self.committed - projected if self._holders > 0 else 0.0
        if self._journal is not None:
            self._journal(self.committed)
        self._freed.set()
        self._freed = asyncio.Event()

    def refusal(self, projected: float) -> str:
        """Why the job stops, and how to go on."""
        return (
            f"budget reached: the job has spent ${self.spent():.4f} of --max-cost ${self.limit:.4f} "
            f"and the next request could cost ${projected:.4f}; run again with a larger --max-cost "
            "to finish the rest (answers so far are kept)"
        )
