"""``llmbatch estimate``: tokens, cost and time of a job, from its records, without calling an API."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any

import click
from rich.console import Console

from .._io import open_reader
from .._jobs.estimate import DEFAULT_ESCALATION, Estimate, StrategyEstimate, cheapest_within, estimate_job
from .._pack import PACKERS, choose_packer
from .._pricing import PriceTable
from .._task import Task
from .options import to_seconds
from .tables import estimate_table


@click.command(
    epilog="""\b
Examples:
  llmbatch estimate reviews.jsonl --task sentiment.toml --model gpt-4o-mini
  llmbatch estimate big.jsonl --task extract.toml --model gpt-4.1-mini --sample 2000 --rpm 500 --tpm 200000
  llmbatch estimate big.jsonl --task extract.toml --model gpt-4.1-mini --deadline 8h
"""
)
@click.argument("input_path", metavar="INPUT")
@click.option("--task", "task_path", required=True, type=click.Path(dir_okay=False), help="Task file (TOML).")
@click.option("--model", default="gpt-4o-mini", show_default=True, help="Model whose prices to use.")
@click.option("--pack", type=click.Choice(sorted(PACKERS)), default="json", show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--sample", type=click.IntRange(1), help="Render only the first N records; extrapolate.")
@click.option("--rpm", type=click.FloatRange(1), help="Requests per minute, for the time estimate.")
@click.option("--tpm", type=click.FloatRange(1), help="Tokens per minute, for the time estimate.")
@click.option("--prices", type=click.Path(dir_okay=False), help="JSON price table over the shipped one.")
@click.option(
    "--deadline",
    callback=to_seconds,
    help="Pick the cheapest strategy whose longest time meets this (90m, 8h, 2d) and print its "
    "command; exit 1 when none does.",
)
@click.option(
    "--escalation",
    type=click.FloatRange(0, 1),
    default=DEFAULT_ESCALATION,
    show_default=True,
    help="For a task with a cascade (models = [...]): the share of records assumed to go on to "
    "each next model.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (for scripts).")
def estimate(**opts: Any) -> None:
    """Estimate tokens, cost and time of running TASK over INPUT, without calling any API."""
    task = Task.from_file(opts["task_path"])
    packer = choose_packer(opts["pack"], task)
    prices = PriceTable.load(opts["prices"])
    price = prices.get(opts["model"])
    report = estimate_job(
        task,
        open_reader(opts["input_path"]),
        packer,
        batch_size=opts["batch_size"],
        price=price,
        sample=opts["sample"],
        cascade=[prices.get(model) for model in task.models],
        escalation=opts["escalation"],
    )
    rpm, tpm = opts["rpm"], opts["tpm"]
    deadline = opts["deadline"]
    chosen = None if deadline is None else cheapest_within(report.strategies, deadline / 60, rpm, tpm)
    command = None if chosen is None else run_command(opts, chosen)
    if opts["as_json"]:
        print(json.dumps(plan_json(report, opts, chosen, command), indent=2))
        if deadline is not None and chosen is None:
            sys.exit(1)
        return
    out = Console(width=max(160, Console().width))
    out.print(estimate_table(report, model=opts["model"], rpm=rpm, tpm=tpm))
    if report.extrapolated:
        out.print(
            f"extrapolated from the first {report.sampled:,} of {report.records:,} records", highlight=False
        )
    if price is None:
        out.print(
            f"no price for model {opts['model']!r}: cost unknown (add it with --prices)", highlight=False
        )
    if deadline is None:
        return
    if chosen is None or command is None:
        out.print(
            f"no strategy is sure to finish within {_hours(deadline)} at these limits"
            + ("" if price is not None else " with a known cost"),
            highlight=False,
        )
        sys.exit(1)
    longest = chosen.times(rpm, tpm)[1]
    out.print(
        f"cheapest within {_hours(deadline)}: {chosen.name}, ${chosen.cost:.4f} expected "
        f"(${chosen.low or 0:.4f}–${chosen.high or 0:.4f}), done in at most {_hours(longest * 60)}:",
        highlight=False,
        markup=False,
    )
    out.print(f"  {command}", highlight=False, markup=False, soft_wrap=True)


def run_command(opts: dict[str, Any], strategy: StrategyEstimate) -> str:
    """The ``llmbatch run`` command for a strategy of this estimate."""
    args = ["llmbatch", "run", opts["input_path"], "--task", opts["task_path"]]
    if not strategy.cascade:  # a cascade runs the task's own models
        args += ["--model", opts["model"]]
    args += ["--pack", opts["pack"], "--batch-size", str(strategy.batch_size)]
    if strategy.mode != "sync":
        args += ["--mode", strategy.mode]
    if opts["prices"]:
        args += ["--prices", opts["prices"]]
    return shlex.join(args)


def plan_json(
    report: Estimate, opts: dict[str, Any], chosen: StrategyEstimate | None, command: str | None
) -> dict[str, Any]:
    """The plan as data: every strategy with its costs and times, and the pick for the deadline."""
    rpm, tpm = opts["rpm"], opts["tpm"]
    strategies = []
    for s in report.strategies:
        expected, longest = s.times(rpm, tpm)
        strategies.append(
            {
                "name": s.name,
                "mode": s.mode,
                "batch_size": s.batch_size,
                "requests": s.requests,
                "input_tokens": s.input_tokens,
                "cached_tokens": s.cached_tokens,
                "output_tokens": s.output_tokens,
                "charged_tokens": s.charged_tokens,
                "cost_usd": {"low": s.low, "expected": s.cost, "high": s.high},
                "cost_per_record_usd": s.cost_per_record,
                "minutes": {"expected": expected, "at_most": longest},
                "command": run_command(opts, s),
            }
        )
    return {
        "records": report.records,
        "sampled": report.sampled,
        "skipped": report.skipped,
        "model": opts["model"],
        "limits": {"rpm": rpm, "tpm": tpm, "assumed": not (rpm or tpm)},
        "strategies": strategies,
        "deadline_minutes": None if opts["deadline"] is None else opts["deadline"] / 60,
        "chosen": None if chosen is None else {"name": chosen.name, "command": command},
    }


def _hours(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 3600:.1f} h" if seconds >= 7200 else f"{seconds / 60:.0f} min"
