"""Live progress while a job runs: a rich display on a terminal, plain lines elsewhere.

It only reads ``Metrics`` (counters the runner keeps anyway), a few times a
second, so it costs the job nothing measurable.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .._metrics import Metrics

__all__ = ["ProgressView", "progress_line"]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class _Rate:
    """Items per minute over the last ``window`` seconds (not since the start: rates change)."""

    def __init__(self, window: float = 30.0) -> None:
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def update(self, now: float, done: int) -> float | None:
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window:
            self.samples.popleft()
        first_time, first_done = self.samples[0]
        if now - first_time < 1e-3:
            return None
        return (done - first_done) / (now - first_time) * 60


def progress_line(metrics: Metrics, rate: float | None) -> dict[str, Any]:
    """The figures progress shows, as plain data."""
    done = metrics.items_ok + metrics.items_failed_total
    total = metrics.items_total
    if rate is None:
        rate = (done - metrics.items_skipped) / metrics.elapsed * 60 or None  # until a window exists
    remaining = max(0, total - done)
    eta = remaining / rate * 60 if rate else None
    this_run = done - metrics.items_skipped
    spent = metrics.cost if not metrics.unpriced_requests else None
    projected = None
    if spent is not None and this_run > 0:
        projected = spent + spent / max(1, this_run - metrics.items_cached) * remaining
    processed = metrics.items_ok + metrics.items_failed_total
    return {
        "done": done,
        "total": total,
        "rate": rate,
        "eta": eta,
        "success": metrics.items_ok / processed if processed else None,
        "spent": spent,
        "projected": projected,
        "budget": metrics.budget,
        "job_spent": metrics.spent_before + metrics.cost,
        "pack": metrics.pack_size,
        "concurrency": metrics.concurrency,
        "rate_limited": metrics.rate_limited,
        "retries": metrics.retries,
        "failed": metrics.items_failed_total,
    }


def _text(figures: dict[str, Any]) -> str:
    rate = figures["rate"]
    success = figures["success"]
    spend = "spend unknown"
    if figures["spent"] is not None:
        spend = f"${figures['spent']:.4f}"
        if figures["projected"] is not None:
            spend += f" (→ ${figures['projected']:.4f})"
        if figures["budget"] is not None:
            spend += f" · job ${figures['job_spent']:.4f} of ${figures['budget']:.4f}"
    return (
        f"{figures['done']:,}/{figures['total']:,} records · "
        f"{'–' if rate is None else f'{rate:,.0f}'}/min · ETA {_duration(figures['eta'])} · "
        f"ok {'–' if success is None else f'{success * 100:.1f}%'} · {spend} · "
        f"pack {figures['pack']} · concurrency {figures['concurrency']} · "
        f"429s {figures['rate_limited']} · retries {figures['retries']} · failed {figures['failed']}"
    )


class ProgressView:
    """Shows progress until ``stop()``; a Live display on a terminal, else a line every ``interval``."""

    def __init__(self, metrics: Metrics, console: Console, *, interval: float = 10.0) -> None:
        self.metrics = metrics
        self.console = console
        self.interval = interval
        self._rate = _Rate()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _figures(self) -> dict[str, Any]:
        done = self.metrics.items_ok + self.metrics.items_failed_total
        return progress_line(self.metrics, self._rate.update(time.monotonic(), done))

    def _renderable(self) -> Group:
        figures = self._figures()
        head, _, tail = _text(figures).partition(" · ok ")
        line = Table.grid(padding=(0, 1))
        line.add_row(ProgressBar(total=max(1, figures["total"]), completed=figures["done"], width=30), head)
        return Group(line, Text("ok " + tail, overflow="fold"))

    async def _loop(self) -> None:
        if self.console.is_terminal:
            with Live(self._renderable(), console=self.console, refresh_per_second=4, transient=True) as live:
                while True:
                    await asyncio.sleep(0.25)
                    live.update(self._renderable())
        else:
            while True:
                await asyncio.sleep(self.interval)
                self.console.print(_text(self._figures()), highlight=False, markup=False, soft_wrap=True)
