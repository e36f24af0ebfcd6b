"""A tiny SVG chart kit for the HTML report: columns, step lines and areas, horizontal bars.

Charts are strings of inline SVG, styled by CSS classes that the page defines
(``bar``, ``line``, ``area``, ``axis``, ``grid``...), so the page has no script
dependency and no network at view time. Every text that comes in is escaped
here; callers pass plain strings. Data marks carry the class ``data``, which is
what the report's tests look for.

    >>> plot = Plot("chart-demo", "demo", x_max=10, y_max=4, x_label="s", y_label="n")
    >>> plot.columns(5.0, [1.0, 4.0])
    >>> plot.render().startswith('<svg id="chart-demo"')
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Bar", "Plot", "bar_chart", "fmt_number", "fmt_seconds", "message_chart", "nice_step"]

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 14, 42

_TIME_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200)


def nice_step(span: float, ticks: int = 5) -> float:
    """A 1-2-5 step that divides ``span`` into about ``ticks`` intervals."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return float(factor * magnitude)
    return float(10 * magnitude)


def fmt_number(value: float) -> str:
    """Compact axis labels: 950, 1.2k, 3M, 0.25."""
    if value == 0:
        return "0"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.3g}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}"


def fmt_seconds(value: float) -> str:
    """Time axis labels: 0.5s, 45s, 3m, 1h30m."""
    if value < 60:
        return f"{value:.3g}s"
    if value < 3600:
        minutes, seconds = divmod(round(value), 60)
        return f"{minutes}m{seconds}s" if seconds else f"{minutes}m"
    hours, minutes = divmod(round(value) // 60, 60)
    return f"{hours}h{minutes}m" if minutes else f"{hours}h"


def _n(value: float) -> str:
    """Coordinates rounded to 0.1 px: a smaller file, the same picture."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _open(chart_id: str, title: str, height: int = HEIGHT) -> str:
    return (
        f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {WIDTH} {height}" role="img"'
        f' aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    )


def message_chart(chart_id: str, title: str, message: str) -> str:
    """A chart frame that says why there is nothing to draw."""
    return (
        f'{_open(chart_id, title, 120)}<text class="nodata" x="{WIDTH / 2}" y="64"'
        f' text-anchor="middle">{escape(message)}</text></svg>'
    )


class Plot:
    """An x/y chart from 0 to (x_max, y_max): columns, step lines, step areas, markers."""

    __slots__ = ("_marks", "chart_id", "title", "x_fmt", "x_label", "x_max", "y_fmt", "y_label", "y_max")

    def __init__(
        self,
        chart_id: str,
        title: str,
        *,
        x_max: float,
        y_max: float,
        x_label: str,
        y_label: str,
        x_fmt: Callable[[float], str] = fmt_seconds,
        y_fmt: Callable[[float], str] = fmt_number,
    ) -> None:
        self.chart_id, self.title = chart_id, title
        self.x_max = x_max if x_max > 0 else 1.0
        step = nice_step(y_max if y_max > 0 else 1.0)
        # Round the top up to a whole tick, so the highest mark sits under a labelled line.
        self.y_max = math.ceil((y_max if y_max > 0 else 1.0) / step) * step
        self.x_label, self.y_label, self.x_fmt, self.y_fmt = x_label, y_label, x_fmt, y_fmt
        self._marks: list[str] = []

    def sx(self, x: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * min(max(x, 0.0), self.x_max) / self.x_max

    def sy(self, y: float) -> float:
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * min(max(y, 0.0), self.y_max) / self.y_max

    def columns(
        self,
        width: float,
        values: Sequence[float | None],
        *,
        start: float = 0.0,
        css: str = "bar",
        tips: Sequence[str] | None = None,
    ) -> None:
        """A rectangle per bucket ``[start + i·width, start + (i+1)·width)`` of a positive value."""
        for i, value in enumerate(values):
            if not value or value <= 0:
                continue
            x0, x1 = self.sx(start + i * width), self.sx(start + (i + 1) * width)
            y = self.sy(value)
            gap = 1.0 if x1 - x0 > 4 else 0.0
            tip = f"<title>{escape(tips[i])}</title>" if tips else ""
            self._marks.append(
                f'<rect class="data {css}" x="{_n(x0 + gap / 2)}" y="{_n(y)}"'
                f' width="{_n(max(0.5, x1 - x0 - gap))}" height="{_n(max(0.5, self.sy(0) - y))}">{tip}</rect>'
            )

    def _steps(self, width: float, values: Sequence[float | None]) -> list[list[tuple[float, float]]]:
        """Runs of consecutive buckets with a value: [(x0, y), ...] per run."""
        runs: list[list[tuple[float, float]]] = []
        run: list[tuple[float, float]] = []
        for i, value in enumerate(values):
            if value is None:
                if run:
                    runs.append(run)
                run = []
                continue
            run.append((i * width, value))
        if run:
            runs.append(run)
        return runs

    def step_line(
        self, width: float, values: Sequence[float | None], *, css: str = "line", tip: str = ""
    ) -> None:
        """A horizontal segment per bucket, joined vertically; a gap where a bucket has no value."""
        parts = []
        for run in self._steps(width, values):
            x, y = run[0]
            parts.append(f"M{_n(self.sx(x))} {_n(self.sy(y))}")
            for x, y in run:
                parts.append(f"V{_n(self.sy(y))}H{_n(self.sx(x + width))}")
        if parts:
            title = f"<title>{escape(tip)}</title>" if tip else ""
            self._marks.append(f'<path class="data {css}" d="{"".join(parts)}">{title}</path>')

    def step_area(
        self, width: float, values: Sequence[float | None], *, css: str = "area", tip: str = ""
    ) -> None:
        """The region under ``step_line``."""
        parts = []
        base = _n(self.sy(0))
        for run in self._steps(width, values):
            parts.append(f"M{_n(self.sx(run[0][0]))} {base}")
            for x, y in run:
                parts.append(f"V{_n(self.sy(y))}H{_n(self.sx(x + width))}")
            parts.append(f"V{base}Z")
        if parts:
            title = f"<title>{escape(tip)}</title>" if tip else ""
            self._marks.append(f'<path class="data {css}" d="{"".join(parts)}">{title}</path>')

    def vline(self, x: float, *, css: str, label: str = "", tip: str = "") -> None:
        """A vertical marker (a percentile, a pause) with an optional label at the top."""
        sx = _n(self.sx(x))
        title = f"<title>{escape(tip)}</title>" if tip else ""
        self._marks.append(f'<path class="{css}" d="M{sx} {TOP}V{HEIGHT - BOTTOM}">{title}</path>')
        if label:
            # Near the right edge the label goes on the left of its line, inside the frame.
            side = 'dx="-3" text-anchor="end"' if self.sx(x) > WIDTH - RIGHT - 40 else 'dx="3"'
            self._marks.append(
                f'<text class="mark-label" x="{sx}" y="{TOP + 10}" {side}>{escape(label)}</text>'
            )

    def _axes(self) -> str:
        out = []
        bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
        step = nice_step(self.y_max)
        y = 0.0
        while y <= self.y_max + step / 1000:
            sy = _n(self.sy(y))
            out.append(f'<path class="grid" d="M{LEFT} {sy}H{right}"/>')
            out.append(
                f'<text class="tick" x="{LEFT - 6}" y="{sy}" dy="4" text-anchor="end">{self.y_fmt(y)}</text>'
            )
            y += step
        xstep = _time_step(self.x_max) if self.x_fmt is fmt_seconds else nice_step(self.x_max, 6)
        x = 0.0
        while x <= self.x_max + xstep / 1000:
            sx = _n(self.sx(x))
            out.append(f'<path class="axis" d="M{sx} {bottom}v4"/>')
            out.append(
                f'<text class="tick" x="{sx}" y="{bottom + 16}" text-anchor="middle">'
                f"{escape(self.x_fmt(x))}</text>"
            )
            x += xstep
        out.append(f'<path class="axis" d="M{LEFT} {TOP}V{bottom}H{right}"/>')
        out.append(
            f'<text class="axis-label" x="{(LEFT + right) / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
            f"{escape(self.x_label)}</text>"
        )
        out.append(
            f'<text class="axis-label" transform="rotate(-90)" x="{-(TOP + bottom) / 2}" y="14"'
            f' text-anchor="middle">{escape(self.y_label)}</text>'
        )
        return "".join(out)

    def render(self) -> str:
        return f"{_open(self.chart_id, self.title)}{self._axes()}{''.join(self._marks)}</svg>"


def _time_step(span: float) -> float:
    """Round steps of time: 1-2-5 below a second, then 15 s, 30 s, 1 min, 5 min... above."""
    if span < 0.7:
        return nice_step(span, 6)
    for step in _TIME_STEPS:
        if span / step <= 7:
            return float(step)
    return float(math.ceil(span / 7 / 86400) * 86400)


@dataclass(frozen=True, slots=True)
class Bar:
    """One row of a horizontal bar chart."""

    label: str
    value: float
    text: str
    css: str = "bar"
    tip: str = ""


def bar_chart(chart_id: str, title: str, bars: Sequence[Bar]) -> str:
    """Horizontal bars, one row each, over a full-width track; the value's text at the right."""
    row_h, label_w, text_w = 26, 170, 150
    out = [_open(chart_id, title, TOP + len(bars) * row_h + 10)]
    top = max((b.value for b in bars), default=0.0)
    span = WIDTH - label_w - text_w - RIGHT
    for i, bar in enumerate(bars):
        y = TOP + i * row_h
        tip = f"<title>{escape(bar.tip or bar.text)}</title>"
        out.append(
            f'<text class="bar-label" x="{label_w - 8}" y="{y + 15}" text-anchor="end">'
            f"{escape(bar.label)}</text>"
        )
        # The track is drawn for every row, so a zero (a free model's spend) still shows its scale.
        out.append(f'<rect class="track" x="{label_w}" y="{y + 3}" width="{span}" height="{row_h - 8}"/>')
        if bar.value > 0 and top > 0:
            out.append(
                f'<rect class="data {escape(bar.css)}" x="{label_w}" y="{y + 3}"'
                f' width="{_n(max(1.0, span * bar.value / top))}" height="{row_h - 8}">{tip}</rect>'
            )
        out.append(f'<text class="bar-value" x="{label_w + span + 8}" y="{y + 15}">{escape(bar.text)}</text>')
    out.append("</svg>")
    return "".join(out)
