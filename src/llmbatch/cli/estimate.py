"""``llmbatch estimate``: tokens, cost and time of a job, from its records, without calling an API
(unless ``--pilot N`` asks for a small real run to measure answers and resends)."""

from __future__ import annotations

import asyncio
import itertools
import json
import shlex
import sys
from typing import Any

import click
from rich.console import Console

from .._exceptions import UsageError
from .._io import open_reader
from .._jobs.estimate import DEFAULT_ESCALATION, Estimate, StrategyEstimate, cheapest_within, estimate_job
from .._jobs.pilot import Pilot, apply_pilot, run_pilot
from .._options import DEFAULT_TIMEOUT
from .._pack import PACKERS, choose_packer
from .._pricing import PriceTable
from .._task import Task
from ..providers import create_provider
from .options import default_provider, provider_config, to_seconds
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
@click.option(
    "--pilot",
    type=click.IntRange(1, 10_000),
    help="Send the first N records through the provider first (it costs what they cost) and "
    "price every strategy from the answers and resends measured. Default: no API call.",
)
@click.option("--provider", help="With --pilot: the provider (openai, anthropic, gemini, local, sim).")
@click.option("--base-url", help="With --pilot: the provider's endpoint.")
@click.option("--api-key", help="With --pilot: the API key; better set the provider's environment variable.")
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
    pilot = None
    if opts["pilot"]:
        pilot = _pilot(opts, task, prices)
        report = apply_pilot(report, pilot, price)
    elif opts["provider"] or opts["base_url"] or opts["api_key"]:
        raise UsageError("--provider, --base-url and --api-key are for --pilot: give --pilot N too")
    rpm, tpm = opts["rpm"], opts["tpm"]
    deadline = opts["deadline"]
    chosen = None if deadline is None else cheapest_within(report.strategies, deadline / 60, rpm, tpm)
    command = None if chosen is None else run_command(opts, chosen)
    if opts["as_json"]:
        data = plan_json(report, opts, chosen, command)
        data["pilot"] = None if pilot is None else _pilot_json(pilot)
        print(json.dumps(data, indent=2))
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
    if pilot is not None:
        spent = "cost unknown" if pilot.cost is None else f"${pilot.cost:.4f}"
        out.print(
            f"pilot: {pilot.records:,} records answered in {pilot.requests:,} requests ({spent}); "
            f"{pilot.mean:.1f} output tokens per record (10th–90th percentile "
            f"{pilot.quantile(0.1):.1f}–{pilot.quantile(0.9):.1f}), {pilot.resent:.1%} resent",
            highlight=False,
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


def _pilot(opts: dict[str, Any], task: Task, prices: PriceTable) -> Pilot:
    """Run the pilot through the provider the options name (as ``run`` would choose it)."""
    settings = {"model_path": None, "timeout": DEFAULT_TIMEOUT, "quiet": opts["as_json"], **opts}
    name = opts["provider"] or default_provider(
        settings, notice=lambda text: Console(stderr=True).print(text)
    )
    provider = create_provider(name, provider_config(settings))
    records = [r.fields for r in itertools.islice(open_reader(opts["input_path"]), opts["pilot"] * 2)]
    sample = [r for r in records if r is not None][: opts["pilot"]]
    if not sample:
        raise UsageError("--pilot: the input has no record to send")
    return asyncio.run(run_pilot(task, sample, provider, batch_size=opts["batch_size"], prices=prices))


def _pilot_json(pilot: Pilot) -> dict[str, Any]:
    return {
        "records": pilot.records,
        "requests": pilot.requests,
        "cost_usd": pilot.cost,
        "output_tokens_per_record": {
            "mean": pilot.mean,
            "p10": pilot.quantile(0.1),
            "p90": pilot.quantile(0.9),
        },
        "resent_share": pilot.resent,
    }


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
