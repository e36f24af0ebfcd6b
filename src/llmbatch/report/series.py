"""A job's requests read back from its store, and the time series drawn from them.

The ``requests`` table holds one row per request with wall-clock ``started`` and
``finished`` times. Everything here is derived from those rows alone, so the
report of a job is the same whichever process (or how many resumed runs) wrote it.

Time is *active* time: a job that was stopped on Monday and resumed on Tuesday
should not draw a day of nothing between two busy minutes. ``Timeline`` cuts out
every idle gap longer than ``IDLE_GAP`` (no request in flight) and remembers
where it cut, so charts can mark the joins.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .._store.reads import RequestRecord

__all__ = [
    "IDLE_GAP",
    "Histogram",
    "Series",
    "Timeline",
    "bucket_width",
    "concurrency",
    "histogram",
    "pack_sizes",
    "throughput",
]

IDLE_GAP = 60.0
"""Seconds with nothing in flight after which the gap is cut out of the time axis."""

_NICE_WIDTHS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)


@dataclass(frozen=True, slots=True)
class Series:
    """Values per time bucket of ``width`` seconds of active time (None: nothing to show there)."""

    width: float
    values: list[float | None]

    @property
    def peak(self) -> float:
        return max((v for v in self.values if v is not None), default=0.0)


class Timeline:
    """Maps wall-clock time onto active time, idle gaps longer than ``gap`` cut out.

    ``segments`` holds (wall start, wall end, active offset) of each busy stretch;
    ``breaks`` holds (active time, idle seconds) of each cut.

        >>> t = Timeline.from_intervals([(100.0, 101.0), (500.0, 502.0)])
        >>> t.duration, t.at(501.0), t.breaks
        (3.0, 2.0, [(1.0, 399.0)])
    """

    __slots__ = ("_starts", "breaks", "duration", "segments")

    def __init__(self, segments: list[tuple[float, float, float]], breaks: list[tuple[float, float]]) -> None:
        self.segments = segments
        self.breaks = breaks
        self._starts = [s[0] for s in segments]
        self.duration = segments[-1][2] + segments[-1][1] - segments[-1][0] if segments else 0.0

    @classmethod
    def from_intervals(cls, intervals: Iterable[tuple[float, float]], gap: float = IDLE_GAP) -> Timeline:
        merged: list[list[float]] = []
        for start, end in sorted(intervals):
            end = max(start, end)
            if merged and start - merged[-1][1] <= gap:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        segments: list[tuple[float, float, float]] = []
        breaks: list[tuple[float, float]] = []
        offset = 0.0
        for i, (start, end) in enumerate(merged):
            if i:
                breaks.append((offset, start - merged[i - 1][1]))
            segments.append((start, end, offset))
            offset += end - start
        return cls(segments, breaks)

    def at(self, wall: float) -> float:
        """Active time of a wall-clock instant (clamped into the nearest busy stretch)."""
        if not self.segments:
            return 0.0
        i = max(0, bisect.bisect_right(self._starts, wall) - 1)
        start, end, offset = self.segments[i]
        return offset + min(max(wall, start), end) - start


def bucket_width(duration: float, buckets: int = 60) -> float:
    """The smallest round width that covers ``duration`` in at most ``buckets`` buckets."""
    for width in _NICE_WIDTHS:
        if duration / width <= buckets:
            return float(width)
    return float(math.ceil(duration / buckets / 3600) * 3600)


def _bucket_count(timeline: Timeline, width: float) -> int:
    return max(1, math.ceil(timeline.duration / width - 1e-9))


def throughput(requests: Sequence[RequestRecord], timeline: Timeline, width: float) -> Series:
    """Records answered per minute, bucketed by when their request finished."""
    n = _bucket_count(timeline, width)
    items = [0.0] * n
    for r in requests:
        items[min(n - 1, int(timeline.at(r.finished) // width))] += r.items_ok
    # Every bucket is divided by its full width, the last one too: when the job ends early
    # in it, it reads low, which is less misleading than the spike of a few records
    # divided by a sliver of time.
    return Series(width, [count * 60.0 / width for count in items])


def pack_sizes(requests: Sequence[RequestRecord], timeline: Timeline, width: float) -> Series:
    """Mean records per request, bucketed by when the request started."""
    n = _bucket_count(timeline, width)
    total, count = [0] * n, [0] * n
    for r in requests:
        i = min(n - 1, int(timeline.at(r.started) // width))
        total[i] += r.size
        count[i] += 1
    return Series(width, [t / c if c else None for t, c in zip(total, count, strict=True)])


def concurrency(requests: Sequence[RequestRecord], timeline: Timeline, width: float) -> tuple[Series, Series]:
    """Requests in flight per bucket: (time-weighted mean, peak), from the start/finish intervals."""
    n = _bucket_count(timeline, width)
    busy = [0.0] * n
    events: list[tuple[float, int]] = []
    for r in requests:
        a, b = timeline.at(r.started), timeline.at(r.finished)
        events += [(a, 1), (b, -1)]
        for i in range(int(a // width), min(n - 1, int(b // width)) + 1):
            busy[i] += max(0.0, min(b, (i + 1) * width) - max(a, i * width))
    mean: list[float | None] = []
    for i, seconds in enumerate(busy):
        covered = min(width, timeline.duration - i * width)
        mean.append(seconds / covered if covered > 1e-9 else None)
    # Sweep: a request that ends at the instant another starts was not in flight with it.
    peak = [0.0] * n
    level = 0
    events.sort()
    for (t, delta), nxt in zip(events, [*events[1:], (math.inf, 0)], strict=True):
        level += delta
        if level <= 0 or nxt[0] <= t:
            continue
        # The level holds over [t, next): a segment that ends on a bucket edge stays out of the next bucket.
        last = min(n - 1, math.ceil(min(nxt[0], timeline.duration) / width) - 1)
        for i in range(int(t // width), last + 1):
            peak[i] = max(peak[i], level)
    return Series(width, mean), Series(width, [float(p) for p in peak])


@dataclass(frozen=True, slots=True)
class Histogram:
    edges: list[float]
    counts: list[int]
    overflow: bool
    """The last bin also holds every value beyond its upper edge (outliers)."""


def histogram(values: Sequence[float], bins: int = 30) -> Histogram:
    """Counts of ``values`` in ``bins`` equal bins from 0; far outliers fold into the last bin."""
    ordered = sorted(values)
    if not ordered:
        return Histogram([0.0, 1.0], [0], False)
    top = ordered[-1]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    overflow = top > 3 * p99 > 0
    upper = p99 * 1.05 if overflow else top
    upper = upper if upper > 0 else 1.0
    step = upper / bins
    counts = [0] * bins
    for v in ordered:
        counts[min(bins - 1, max(0, int(v / step)))] += 1
    return Histogram([i * step for i in range(bins + 1)], counts, overflow)
