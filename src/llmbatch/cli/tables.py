"""The metrics table printed at the end of a run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

__all__ = ["metrics_table"]


def _pct(value: float | None) -> str:
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
        ("batch success rate", _pct(summary["batch_success_rate"])),
        ("item success rate", _pct(summary["item_success_rate"])),
        ("first-try success", _pct(summary["first_try_rate"])),
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
        ("cost", _cost_cell(summary)),
        ("cost per item", _usd(summary["cost_per_item_usd"], 6) if done else "–"),
        ("retries / splits", f"{summary['retries']:,} / {summary['splits']:,}"),
        ("429s / timeouts", f"{summary['rate_limited']:,} / {summary['timeouts']:,}"),
    ]
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
    """One row per strategy of an ``Estimate``: requests, tokens, cost, time at the limits."""
    table = Table(title=f"estimate · {report.records:,} records · {model}", title_justify="left")
    for name in (
        "strategy",
        "requests",
        "input tok",
        "cached tok",
        "output tok",
        "cost",
        "per record",
        "time",
    ):
        table.add_column(name, justify="left" if name == "strategy" else "right")
    baseline = report.strategies[0].cost
    for s in report.strategies:
        minutes = s.minutes(rpm, tpm)
        share = "" if s.cost is None or not baseline else f" ({s.cost / baseline * 100:.0f}%)"
        table.add_row(
            s.name,
            f"{s.requests:,}",
            f"{s.input_tokens:,}",
            f"{s.cached_tokens:,}",
            f"{s.output_tokens:,}",
            _usd(s.cost) + share,
            _usd(s.cost_per_record, 6),
            "no limits given" if minutes is None else f"≥ {minutes:,.1f} min",
        )
    return table
