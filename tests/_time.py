"""The tests' one fake clock: time moves only when the test, or a fake sleep, moves it."""

from __future__ import annotations


class FakeClock:
    """A ``Clock`` and a ``Sleep`` (``llmbatch._engine.steering``) on the same fake time.

    Calling it gives the time now. ``await clock.sleep(s)`` returns at once: it records
    ``s`` in ``sleeps`` and moves the time on by ``s``, as if it had waited. Hand it to
    the code under test as ``clock=clock, sleep=clock.sleep``, and move time yourself
    with ``advance(s)`` (or set ``now``).

    ``frozen=True``: sleeps are recorded, but time does not move (a waiter then sees
    no time pass, and every wait it asks for is the whole wait).

        >>> clock = FakeClock(1000.0)
        >>> clock.advance(2.5)
        >>> clock()
        1002.5
    """

    def __init__(self, start: float = 0.0, *, frozen: bool = False) -> None:
        self.now = start
        self.frozen = frozen
        self.sleeps: list[float] = []
        """Every sleep asked for, in order, in seconds."""

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if not self.frozen:
            self.now += seconds
