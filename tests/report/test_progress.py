"""Live progress: the figures it shows, and plain lines when output is not a terminal."""

from __future__ import annotations

import asyncio
import io

import pytest
from rich.console import Console

from _time import FakeClock
from llmbatch._metrics import Metrics
from llmbatch.report.progress import ProgressView, progress_line


def test_figures_rate_eta_spend_and_projection() -> None:
    clock = FakeClock()
    metrics = Metrics(clock=clock)
    metrics.start()
    metrics.items_total, metrics.items_ok, metrics.cost = 1000, 250, 0.5
    metrics.pack_size, metrics.concurrency = 20, 8
    clock.now = 30.0
    figures = progress_line(metrics, rate=None)
    assert figures["rate"] == pytest.approx(500)  # 250 records in 30 s, before a rate window exists
    assert figures["eta"] == pytest.approx(90)  # 750 left at 500/min
    assert figures["projected"] == pytest.approx(2.0)  # $0.5 per 250 records → $2 for 1000
    assert (figures["pack"], figures["concurrency"]) == (20, 8)


def test_spend_is_unknown_when_a_request_had_no_price() -> None:
    metrics = Metrics()
    metrics.items_total, metrics.items_ok, metrics.unpriced_requests = 10, 5, 1
    figures = progress_line(metrics, rate=60.0)
    assert figures["spent"] is None and figures["projected"] is None


async def test_plain_lines_at_the_interval_when_not_a_terminal() -> None:
    out = io.StringIO()
    metrics = Metrics()
    metrics.start()
    metrics.items_total, metrics.items_ok = 10, 4
    view = ProgressView(metrics, Console(file=out, force_terminal=False, width=200), interval=0.05)
    view.start()
    await asyncio.sleep(0.18)
    await view.stop()
    lines = [line for line in out.getvalue().splitlines() if line]
    assert len(lines) >= 2
    assert all(line.startswith("4/10 records") for line in lines)
    assert "ETA" in lines[0] and "$" in lines[0]
