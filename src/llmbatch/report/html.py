"""``llmbatch report``: one self-contained HTML page about a job.

Everything the page shows is inside the file — CSS, a few lines of script, the
charts as inline SVG — and its Content-Security-Policy allows nothing else
(``default-src 'none'``, the one style and the one script by hash), so the page
never touches the network, and a record id or reason that smuggles markup in
would not run even if it got past the escaping. All data is escaped.

    >>> render_report(".llmbatch/reviews-sentiment", "report.html")   # doctest: +SKIP
    PosixPath('report.html')
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from .._exceptions import UsageError
from .._metrics import percentile
from .._pricing import Price, PriceTable
from .._store.reads import FailedItem, RequestRecord, open_snapshot
from .._types import FailureKind, Usage
from . import status as fmt
from .assets import CSP, CSS, SCRIPT
from .series import (
    Timeline,
    bucket_width,
    concurrency,
    histogram,
    pack_sizes,
    throughput,
)
from .svg import Bar, Plot, bar_chart, fmt_seconds, message_chart

__all__ = ["CHART_IDS", "CSP", "FAILED_ROWS_SHOWN", "render_report"]

FAILED_ROWS_SHOWN = 1000
"""The failed-records table stops here; every failed record is in the output file anyway."""

NO_REQUESTS = "no data: this job has sent no requests yet"

CHART_IDS = (
    "chart-throughput",
    "chart-latency",
    "chart-packsize",
    "chart-concurrency",
    "chart-spend",
    "chart-failures",
)


def render_report(job_dir: str | Path, path: str | Path, *, now: float | None = None) -> Path:
    """Write the job's HTML report to ``path`` (replaced atomically) and return the path.

    Safe while the job runs: one read-only snapshot of the store.
    """
    now = time.time() if now is None else now
    with open_snapshot(job_dir) as job:
        status = fmt.collect_status(job, job_dir, now=now)
        requests = job.requests()
        failed = job.failed_items(FAILED_ROWS_SHOWN)
        price = _price(job.meta("price"), status["model"])
    page = _page(status, requests, failed, price, now)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write the report to {path}: {exc.strerror or exc}") from exc
    return path


def _price(stored: Any, model: str | None) -> tuple[Price, str] | None:
    """The job's price and where it came from: its own (``stored``, its ``meta["price"]``),
    else the shipped table's."""
    if isinstance(stored, dict):
        try:
            return Price.from_entry(stored), "the job's prices"
        except ValueError:
            pass  # an unreadable stored price: the shipped table's, if it has the model
    shipped = PriceTable.load().get(model) if model else None
    return None if shipped is None else (shipped, f"the shipped prices of {model}")


# -- the page ----------------------------------------------------------------------


def _page(
    status: Mapping[str, Any],
    requests: Sequence[RequestRecord],
    failed: Sequence[FailedItem],
    price: tuple[Price, str] | None,
    now: float,
) -> str:
    name = Path(str(status["job_dir"])).name or str(status["job_dir"])
    figures = "".join(_figure(title, svg, note) for title, svg, note in _charts(status, requests, price))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>llmbatch report · {escape(name)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>llmbatch report · {escape(name)}</h1>"
        f'<p class="sub">{escape(_subtitle(status, now))}</p>'
        f'<div class="cards">{_cards(status)}</div>'
        f'<div class="grid">{figures}</div>'
        f"{_failed_table(status, failed)}"
        '<section class="panel"><h2>Resume</h2><p class="note">Running the same command again resumes'
        " the job: finished records are not sent again.</p>"
        f"<pre><code>{escape(status['resume_command'])}</code></pre>"
        + (f'<p class="note">{escape(status["resume_note"])}</p>' if status["resume_note"] else "")
        + f"</section></main><script>{SCRIPT}</script></body></html>\n"
    )


def _subtitle(status: Mapping[str, Any], now: float) -> str:
    parts = [str(status["job_dir"])]
    for key in ("model", "endpoint", "input"):
        if status[key]:
            parts.append(f"{key} {status[key]}")
    parts.append(f"first request {fmt.when(status['first_request_at'])}")
    parts.append(f"report {fmt.when(now)}")
    return " · ".join(parts)


def _card(key: str, value: str, note: str = "", css: str = "") -> str:
    return (
        f'<div class="card"><div class="k">{escape(key)}</div>'
        f'<div class="v {css}">{escape(value)}</div><div class="n">{escape(note)}</div></div>'
    )


def _cards(s: Mapping[str, Any]) -> str:
    total = s["records_total"]
    settled = s["records_done"] + s["records_failed"]
    share = f"{settled / total:.1%} settled" if total else ""
    success = f"{s['records_done'] / settled:.1%} ok" if settled else ""
    return "".join(
        [
            _card("records", f"{total:,}", share),
            _card("done", f"{s['records_done']:,}", success, "ok"),
            _card("failed", f"{s['records_failed']:,}", fmt.kinds(s["failures_by_kind"]), "fail"),
            _card(
                "pending",
                f"{s['records_pending']:,}",
                f"ETA {fmt.duration(s['eta_s'])}" if s["records_pending"] else "none left",
            ),
            _card(
                "throughput",
                fmt.rate(s["items_per_min_overall"]),
                f"{fmt.duration(s['active_s'])} active",
            ),
            _card("spend", fmt.usd(s["spend_usd"]), f"projected {fmt.usd(s['projected_spend_usd'])}"),
            _card(
                "requests",
                f"{s['requests']:,}",
                f"mean pack {s['mean_pack_size'] or 0:.1f}",
            ),
            _card("429s / timeouts", f"{s['rate_limited']:,} / {s['timeouts']:,}"),
        ]
    )


def _figure(title: str, svg: str, note: str) -> str:
    return f"<figure><h2>{escape(title)}</h2>{svg}<figcaption>{escape(note)}</figcaption></figure>"


def _charts(
    status: Mapping[str, Any],
    requests: Sequence[RequestRecord],
    price: tuple[Price, str] | None,
) -> list[tuple[str, str, str]]:
    """(title, svg, caption) of each chart, in page order."""
    titles = (
        "Throughput",
        "Latency distribution",
        "Pack size",
        "Concurrency",
        "Spend by token type",
        "Failures by kind",
    )
    if not requests:
        charts = [(t, message_chart(i, t, NO_REQUESTS), "") for t, i in zip(titles, CHART_IDS, strict=True)]
        if status["records_failed"]:  # records can fail before any request: unreadable, duplicate ids
            charts[5] = (titles[5], *_failures(status))
        return charts
    timeline = Timeline.from_intervals((r.started, r.finished) for r in requests)
    width = bucket_width(timeline.duration)
    pause_note = (
        f" Dashed lines: {len(timeline.breaks)} idle gap(s) cut out (the job was stopped or waiting)."
        if timeline.breaks
        else ""
    )
    return [
        (titles[0], *_throughput(requests, timeline, width, pause_note)),
        (titles[1], *_latency(requests)),
        (titles[2], *_packsize(requests, timeline, width, pause_note)),
        (titles[3], *_concurrency(requests, timeline, width, pause_note)),
        (titles[4], *_spend(status, price)),
        (titles[5], *_failures(status)),
    ]


def _pauses(plot: Plot, timeline: Timeline) -> None:
    for at, idle in timeline.breaks:
        plot.vline(at, css="pause", label=f"idle {fmt.duration(idle)}", tip=f"idle {fmt.duration(idle)}")


def _throughput(
    requests: Sequence[RequestRecord], timeline: Timeline, width: float, pause_note: str
) -> tuple[str, str]:
    series = throughput(requests, timeline, width)
    plot = Plot(
        "chart-throughput",
        "Throughput",
        x_max=timeline.duration,
        y_max=series.peak,
        x_label="active time",
        y_label="records / min",
    )
    tips = [
        f"{fmt_seconds(i * width)}–{fmt_seconds((i + 1) * width)}: {v or 0:,.0f} records/min"
        for i, v in enumerate(series.values)
    ]
    plot.columns(width, series.values, tips=tips)
    _pauses(plot, timeline)
    note = f"Records answered per minute, in buckets of {fmt_seconds(width)} of active time.{pause_note}"
    return plot.render(), note


def _latency(requests: Sequence[RequestRecord]) -> tuple[str, str]:
    latencies = [r.latency for r in requests if r.latency is not None]
    title = "Latency distribution"
    if not latencies:
        return message_chart("chart-latency", title, "no data: no request has been answered yet"), ""
    hist = histogram(latencies)
    step = hist.edges[1] - hist.edges[0]
    plot = Plot(
        "chart-latency",
        title,
        x_max=hist.edges[-1],
        y_max=max(hist.counts),
        x_label="latency per request",
        y_label="requests",
    )
    last = len(hist.counts) - 1
    tips = [
        f"{hist.edges[i]:.3g}–{hist.edges[i + 1]:.3g} s{'+' if hist.overflow and i == last else ''}: {c:,}"
        for i, c in enumerate(hist.counts)
    ]
    plot.columns(step, [float(c) for c in hist.counts], tips=tips)
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    assert p50 is not None and p95 is not None
    plot.vline(p50, css="p50", label="p50", tip=f"p50 {p50:.3f} s")
    plot.vline(p95, css="p95", label="p95", tip=f"p95 {p95:.3f} s")
    note = (
        f"{len(latencies):,} answered requests; p50 {p50:.3f} s, p95 {p95:.3f} s, max {max(latencies):.3f} s."
    )
    if hist.overflow:
        note += " The last bar also holds the slowest outliers."
    return plot.render(), note


def _packsize(
    requests: Sequence[RequestRecord], timeline: Timeline, width: float, pause_note: str
) -> tuple[str, str]:
    series = pack_sizes(requests, timeline, width)
    plot = Plot(
        "chart-packsize",
        "Pack size",
        x_max=timeline.duration,
        y_max=series.peak,
        x_label="active time",
        y_label="records per request",
    )
    plot.step_line(width, series.values, tip="mean records per request")
    _pauses(plot, timeline)
    return plot.render(), f"Mean records per request, by when the request started.{pause_note}"


def _concurrency(
    requests: Sequence[RequestRecord], timeline: Timeline, width: float, pause_note: str
) -> tuple[str, str]:
    mean, peak = concurrency(requests, timeline, width)
    plot = Plot(
        "chart-concurrency",
        "Concurrency",
        x_max=timeline.duration,
        y_max=peak.peak,
        x_label="active time",
        y_label="requests in flight",
    )
    plot.step_area(width, mean.values, tip="mean requests in flight")
    plot.step_line(width, peak.values, tip="peak requests in flight")
    _pauses(plot, timeline)
    note = f"Shaded: mean requests in flight; line: the peak, per {fmt_seconds(width)}.{pause_note}"
    return plot.render(), note


def _spend(status: Mapping[str, Any], price: tuple[Price, str] | None) -> tuple[str, str]:
    title = "Spend by token type"
    prompt, cached, output = status["prompt_tokens"], status["cached_tokens"], status["completion_tokens"]
    written = status.get("cache_write_tokens", 0)
    tokens = {"input": max(0, prompt - cached - written), "cached input": cached}
    if written:
        tokens["cache writes"] = written
    tokens["output"] = output
    spent: float | None = status["spend_usd"]
    if price is not None:
        rates, source = price
        dollars = {
            "input": rates.cost(Usage(prompt_tokens=tokens["input"], completion_tokens=0)),
            "cached input": rates.cost(
                Usage(prompt_tokens=cached, completion_tokens=0, cached_tokens=cached)
            ),
            "cache writes": rates.cost(Usage(prompt_tokens=written, cache_write_tokens=written)),
            "output": rates.cost(Usage(prompt_tokens=0, completion_tokens=output)),
        }
        weights = dollars
    else:
        dollars, source = {}, ""
        weights = {k: float(v) for k, v in tokens.items()}
    weight_sum = sum(weights.values())
    if spent is not None and weight_sum > 0:
        # The recorded costs are the truth (batch discounts, a --prices file); prices only split them.
        amounts = {k: spent * w / weight_sum for k, w in weights.items()}
        how = f"split by {source}" if price is not None else "per-token prices unknown: split by token count"
        note = f"{fmt.usd(spent)} recorded, {how}."
    elif spent is not None:  # a free model (prices of 0), or no tokens counted
        amounts = {k: spent / len(tokens) for k in tokens}
        note = f"{fmt.usd(spent)} recorded."
    elif price is not None:
        amounts = dollars
        note = f"Tokens × {source}: some answered requests have no recorded cost."
    else:
        bars = [Bar(k, float(v), f"{v:,} tokens", css=_SPEND_CSS[k]) for k, v in tokens.items()]
        return bar_chart("chart-spend", title, bars), "Cost unknown (no price for the model): tokens shown."
    bars = [
        Bar(k, amounts[k], f"{fmt.usd(amounts[k])} · {tokens[k]:,} tok", css=_SPEND_CSS[k]) for k in tokens
    ]
    return bar_chart("chart-spend", title, bars), note


_SPEND_CSS = {
    "input": "bar-input",
    "cached input": "bar-cached",
    "cache writes": "bar-written",
    "output": "bar-output",
}


def _failures(status: Mapping[str, Any]) -> tuple[str, str]:
    title = "Failures by kind"
    bars = [
        Bar(f"record · {kind}", float(n), f"{n:,} records", css="bar-fail")
        for kind, n in status["failures_by_kind"].items()
    ]
    bars += [
        Bar(f"request · {kind}", float(n), f"{n:,} requests", css="bar-warn")
        for kind, n in status["requests_failed_by_kind"].items()
    ]
    if not bars:
        return message_chart("chart-failures", title, "no failed records and no failed requests"), ""
    note = (
        "Red: records that ended failed, by reason. Amber: requests that failed (and were retried or split)."
    )
    return bar_chart("chart-failures", title, bars), note


def _failed_table(status: Mapping[str, Any], failed: Sequence[tuple[int, str, str, int, str]]) -> str:
    total = status["records_failed"]
    if not total:
        return '<section class="panel"><h2>Failed records</h2><p class="note">None.</p></section>'
    shown = len(failed)
    cap = (
        f" Showing the first {shown:,} of {total:,}; every failed record is in the output file with its"
        " reason."
        if shown < total
        else ""
    )
    rows = "".join(
        f'<tr><td class="num">{idx:,}</td><td class="id">{escape(str(item_id))}</td>'
        f'<td>{escape(kind or FailureKind.UNKNOWN)}</td><td class="num">{attempts}</td>'
        f'<td class="reason">{escape(error)}</td></tr>'
        for idx, item_id, kind, attempts, error in failed
    )
    return (
        f'<section class="panel"><h2>Failed records ({total:,})</h2>'
        f'<p class="note">Position in the input, id, kind and the last reason.{escape(cap)}</p>'
        '<input id="filter" type="search" placeholder="filter by id, kind or reason" aria-label="filter">'
        f' <span id="filter-count" class="note">{shown:,} shown</span>'
        '<table id="failed"><thead><tr><th>#</th><th>id</th><th>kind</th><th>attempts</th><th>reason</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></section>"
    )
