"""The tables the commands print: a run's metrics, an estimate, tune's sizes, a vote's agreement."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from .._jobs.tune import TuneReport
from .._jobs.vote import VoteReport
from ..report.status import prompt_cache_rows

__all__ = ["estimate_table", "metrics_table", "tune_table", "vote_table"]


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _requests_cell(summary: Mapping[str, Any]) -> str:
    mean = summary["mean_pack_size"]
    pack = "" if mean is None else f" (mean pack {mean:.1f})"
    return f"{summary['requests']:,}{pack}"


def _cost_cell(summary: Mapping[str, Any]) -> str:
    cost, budget = summary["cost_usd"], summary.get("budget_usd")
    if budget is None or cost is None:
        return _usd(cost)
    job = summary.get("job_cost_usd", cost)
    earlier = "" if job == cost else f", job ${job:.4f}"
    return f"{_usd(cost)}{earlier} of --max-cost ${budget:.4f}"


def _secs(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def _usd(value: float | None, digits: int = 4) -> str:
    return "unknown" if value is None else f"${value:.{digits}f}"


def metrics_table(summary: Mapping[str, Any], *, title: str = "llmbatch") -> Table:
    """A two-column table of the run's metrics (``Metrics.summary()``)."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    done = summary["items_this_run"]
    rows: list[tuple[str, str]] = [
        (
            "records",
            f"{summary['items_total']:,} ({summary['items_ok']:,} ok, {summary['items_failed']:,} failed)",
        ),
    ]
    if summary.get("items_skipped"):
        rows.append(("already done (resumed)", f"{summary['items_skipped']:,}"))
    if summary.get("items_cached"):
        rows.append(("from cache", f"{summary['items_cached']:,}"))
    rows += [
        ("batch success rate", percent(summary["batch_success_rate"])),
        ("item success rate", percent(summary["item_success_rate"])),
        ("first-try success", percent(summary["first_try_rate"])),
        (
            "throughput",
            f"{summary['items_per_min']:,.0f} items/min ({done:,} in {summary['elapsed_s']:.1f} s)",
        ),
        ("requests", _requests_cell(summary)),
        (
            "latency mean / p50 / p95",
            " / ".join(_secs(summary[k]) for k in ("latency_mean_s", "latency_p50_s", "latency_p95_s")),
        ),
        (
            "tokens in / out / cached",
            f"{summary['prompt_tokens']:,} / {summary['completion_tokens']:,} / {summary['cached_tokens']:,}",
        ),
        *prompt_cache_rows(summary, requests=summary["requests_ok"]),
        ("cost", _cost_cell(summary)),
        ("cost per item", _usd(summary["cost_per_item_usd"], 6) if done else "–"),
        ("retries / splits", f"{summary['retries']:,} / {summary['splits']:,}"),
        ("429s / timeouts", f"{summary['rate_limited']:,} / {summary['timeouts']:,}"),
    ]
    if summary.get("flex_unavailable") or summary.get("flex_fallbacks"):
        rows.append(
            (
                "flex unavailable / fell back",
                f"{summary['flex_unavailable']:,} requests / {summary['flex_fallbacks']:,} records "
                "at the default tier",
            )
        )
    errors = summary.get("requests_failed_by_kind") or {}
    if errors:
        rows.append(("failed requests by kind", ", ".join(f"{k} {v}" for k, v in sorted(errors.items()))))
    by_model = summary.get("by_model") or {}
    if len(by_model) > 1:
        for model, entry in by_model.items():
            cost = "" if summary["cost_usd"] is None else f", ${entry['cost']:.4f}"
            rows.append((f"model {model}", f"{int(entry['records']):,} records{cost}"))
    failed = summary.get("failed_by_kind") or {}
    if failed:
        rows.append(("failed records by kind", ", ".join(f"{k} {v}" for k, v in sorted(failed.items()))))
    for name, value in rows:
        table.add_row(name, value)
    return table


def estimate_table(report: Any, *, model: str, rpm: float | None, tpm: float | None) -> Table:
    """One row per strategy of an ``Estimate``: requests, tokens, cost low / expected / high (and
    its share of one per request), and the time at the limits, expected and at most."""
    limits = "" if rpm or tpm else " · times at 500 RPM / 200k TPM (give --rpm/--tpm)"
    table = Table(title=f"estimate · {report.records:,} records · {model}{limits}", title_justify="left")
    for name in (
        "strategy",
        "requests",
        "input tok",
        "cached tok",
        "output tok",
        "cost low / expected / high",
        "per record",
        "time (at most)",
    ):
        table.add_column(name, justify="left" if name == "strategy" else "right")
    baseline = report.strategies[0].cost
    for s in report.strategies:
        expected, longest = s.times(rpm, tpm)
        share = "" if s.cost is None or not baseline else f" ({s.cost / baseline * 100:.0f}%)"
        table.add_row(
            s.name,
            f"{s.requests:,}",
            f"{s.input_tokens:,}",
            f"{s.cached_tokens:,}",
            f"{s.output_tokens:,}",
            f"{_usd(s.low)} / {_usd(s.cost)}{share} / {_usd(s.high)}" if s.cost is not None else "–",
            _usd(s.cost_per_record, 6),
            f"{_minutes(expected)} ({_minutes(longest)})",
        )
    return table


def _minutes(minutes: float) -> str:
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 120:
        return f"{minutes:,.1f} min"
    return f"{minutes / 60:,.1f} h"


def _num(value: float | None) -> str:
    """Whole numbers, with one decimal below 10 (a local model answers a few items a minute)."""
    if value is None:
        return "–"
    return f"{value:.1f}" if abs(value) < 10 else f"{value:,.0f}"


def _per_1k(value: float | None) -> str:
    return "unknown" if value is None else f"${value * 1000:.4f}"


def tune_table(report: TuneReport, *, title: str = "tune") -> Table:
    """One row per pack size; the recommended size is marked, sizes below the floor in red.

    Columns: first-try success, agreement with size 1, answer length relative to
    size 1, items/min, tokens per item (in / out), cost per 1,000 items.
    """
    table = Table(title=title, title_justify="left")
    for name in ("size", "first try", "agreement", "length", "items/min", "tokens/item", "$/1k items"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for row in report.sizes:
        below = row.agreement is not None and row.agreement < report.min_agreement
        agreement = percent(row.agreement)
        mark = ""
        if row.size == report.recommended:
            mark = "[bold green]◀ best[/]"
        elif below:
            mark = "[red]< floor[/]"
        table.add_row(
            str(row.size),
            percent(row.first_try_rate),
            f"[red]{agreement}[/]" if below else agreement,
            "–" if row.length_ratio is None else f"{row.length_ratio:.2f}×",
            _num(row.items_per_min),
            f"{_num(row.prompt_tokens_per_item)} / {_num(row.completion_tokens_per_item)}",
            _per_1k(row.cost_per_item),
            mark,
        )
    return table


def vote_table(report: VoteReport, *, title: str = "votes") -> Table:
    """What permutation voting did (``run --votes K``): passes, early stops, agreement, extra spend."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    first = report.passes[0] if report.passes else None
    rows = [
        ("records", f"{report.records:,} ({report.ok:,} ok, {report.failed:,} failed)"),
        ("votes per record", f"up to {report.votes}"),
        ("records per pass", " / ".join(f"{p.records:,}" for p in report.passes)),
        ("settled early (majority certain)", f"{report.settled_early:,}"),
        ("unanimous", f"{report.unanimous:,}"),
        ("mean agreement", percent(report.mean_agreement)),
        (
            "requests",
            f"{report.requests:,} ({report.extra_requests:,} beyond one pass)" if first is not None else "0",
        ),
        (
            "cost",
            "unknown"
            if report.cost is None
            else f"${report.cost:.4f} (${report.extra_cost or 0:.4f} beyond one pass)",
        ),
        ("time", f"{report.elapsed_s:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
