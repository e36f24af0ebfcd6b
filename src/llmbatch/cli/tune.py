"""``llmbatch tune``: find the largest pack size whose answers still match one-at-a-time answers.

The command is attached to the main group by ``cli.py`` (``COMMANDS``); the
measuring is ``_jobs.tune``'s, the table and the wording are here.

    llmbatch tune reviews.jsonl --task sentiment.toml --model gpt-4o-mini --save
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from .._engine.policy import RetryPolicy
from .._exceptions import UsageError
from .._io import open_reader
from .._jobs import tune as _tune
from .._jobs.tune import (
    DEFAULT_SAMPLE,
    DEFAULT_SIZES,
    SizeResult,
    TuneEstimate,
    TuneReport,
    estimate_tune_cost,
    normalise_sizes,
    reservoir_sample,
    save_tuned,
)
from .._options import RunOptions
from .._pack import PACKERS, choose_packer
from .._pricing import PriceTable, price_for
from .._task import Task
from ..providers import create_provider
from ._console import err
from .options import check_provider_options, default_provider, local_model_options, provider_config
from .tables import percent, tune_table

__all__ = ["COMMANDS", "tune"]


class _Sizes(click.ParamType):  # type: ignore[type-arg]
    """Comma-separated pack sizes: ``1,5,10,20,50``."""

    name = "N,N,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[int]:
        if isinstance(value, list | tuple):
            return [int(v) for v in value]
        try:
            sizes = [int(part) for part in str(value).split(",") if part.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of whole numbers, like 1,5,10", param, ctx)
        if not sizes or not all(1 <= s <= 1000 for s in sizes):
            self.fail("pack sizes must be from 1 to 1000", param, ctx)
        return sizes


def _estimate_line(estimate: TuneEstimate, sizes: list[int], model: str) -> str:
    spend = (
        f"up to ${estimate.cost:.4f}"
        if estimate.cost is not None
        else f"cost unknown (no price for {model!r}; add it with --prices)"
    )
    return (
        f"tune: {estimate.records:,} sampled records at sizes {', '.join(map(str, sizes))} → "
        f"{estimate.requests:,} requests, ~{estimate.prompt_tokens:,} input tokens, "
        f"≤ {estimate.completion_tokens:,} output tokens, {spend}"
    )


def _verdict(report: TuneReport) -> str:
    best = report.recommended
    floor = percent(report.min_agreement)
    if best == 1 and any(r.size > 1 for r in report.sizes):
        return f"no pack size kept agreement ≥ {floor}: recommended 1 record per request"
    chosen = report.result(best)
    detail = "" if chosen is None else f" (agreement {percent(chosen.agreement)})"
    return (
        f"recommended: {best} records per request{detail}: the best items/min × first-try success "
        f"among sizes with agreement ≥ {floor}"
    )


@click.command(
    "tune",
    epilog="""\b
Examples:
  llmbatch tune reviews.jsonl --task sentiment.toml --model gpt-4o-mini
  llmbatch tune reviews.jsonl --task sentiment.toml --sizes 1,10,25 --sample 300 --save
  llmbatch tune reviews.jsonl --task sentiment.toml --provider sim --max-cost 0.50
""",
)
@click.argument("input_path", metavar="INPUT")
@click.option("--task", "task_path", required=True, type=click.Path(dir_okay=False), help="Task file (TOML).")
@click.option(
    "--sizes",
    type=_Sizes(),
    default=",".join(map(str, DEFAULT_SIZES)),
    show_default=True,
    help="Pack sizes to measure (1, the reference, is always added).",
)
@click.option(
    "--sample",
    type=click.IntRange(1),
    default=DEFAULT_SAMPLE,
    show_default=True,
    help="Records in the seeded sample.",
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 1),
    default=0.98,
    show_default=True,
    help="Least agreement with one-at-a-time answers a recommended size must keep.",
)
@click.option("--save", is_flag=True, help="Save the recommendation as the ceiling of run --batch-size auto.")
@click.option("--provider", help="openai, local, sim. Default: openai if a key/URL is set, else local.")
@click.option("--model", help="Model name.")
@local_model_options
@click.option(
    "--base-url", envvar="OPENAI_BASE_URL", help="OpenAI-compatible endpoint [env OPENAI_BASE_URL]."
)
@click.option(
    "--response-format",
    type=click.Choice(["json_schema", "json_object"]),
    help="How the json pack asks for its schema (json_object for llama-cpp-python's server).",
)
@click.option("--api-key", help="API key; better set OPENAI_API_KEY.")
@click.option(
    "--pack", type=click.Choice(sorted(PACKERS)), help="Pack format. Default: json where supported."
)
@click.option(
    "--concurrency", type=click.IntRange(1, 1000), default=8, show_default=True, help="Most in flight."
)
@click.option("--max-attempts", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option(
    "--timeout", type=click.FloatRange(0.1), default=120.0, show_default=True, help="Per request, s."
)
@click.option("--rpm", type=click.FloatRange(1), help="Requests per minute (else learnt from headers).")
@click.option("--tpm", type=click.FloatRange(1), help="Tokens per minute (else learnt from headers).")
@click.option("--prices", type=click.Path(dir_okay=False), help="JSON price table over the shipped one.")
@click.option(
    "--max-cost",
    type=click.FloatRange(0, min_open=True),
    help="Budget in USD for the whole tune; refuses to start when the estimate is above it.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample and the shuffles.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the table and the recommendation.")
def tune(**opts: Any) -> None:
    """Measure, on a sample of INPUT, how answers hold up as more records share a request."""
    task = Task.from_file(opts["task_path"])
    config = provider_config(opts)
    if task.models and not opts["model"]:
        config = dataclasses.replace(config, model=task.models[0])  # a cascade: its first model
    if opts["provider"] is None:
        opts["provider"] = default_provider(opts, notice=lambda text: err.print(text, highlight=False))
    name = opts["provider"]
    check_provider_options(name, opts)
    probe = create_provider(name, config)  # not started: only its model, price and pack format
    packer = choose_packer(opts["pack"] or probe.default_pack, task, probe)
    prices = PriceTable.load(opts["prices"])
    price = price_for(probe.model, billed=probe.capabilities.billed, prices=prices)
    sizes = normalise_sizes(opts["sizes"])
    records = reservoir_sample(
        (r.fields for r in open_reader(opts["input_path"]) if r.fields is not None),
        opts["sample"],
        opts["seed"],
    )
    if not records:
        raise UsageError(f"{opts['input_path']} has no readable records to tune on")
    estimate = estimate_tune_cost(
        task, records, sizes=sizes, sample=len(records), seed=opts["seed"], pack=packer.name, price=price
    )
    if not opts["quiet"]:
        err.print(_estimate_line(estimate, sizes, probe.model), highlight=False, markup=False)
    max_cost = opts["max_cost"]
    if max_cost is not None:
        if estimate.cost is None:
            raise UsageError(
                f"--max-cost needs the price of model {probe.model!r}; add it with --prices FILE"
            )
        if estimate.cost > max_cost:
            raise UsageError(
                f"tune may spend up to ${estimate.cost:.4f}, more than --max-cost ${max_cost:.4f}: "
                "lower --sample, drop large --sizes, or raise --max-cost"
            )
    options = RunOptions(
        concurrency=opts["concurrency"],
        pack=packer.name,
        policy=RetryPolicy(max_attempts=opts["max_attempts"]),
        timeout=opts["timeout"],
        rpm=opts["rpm"],
        tpm=opts["tpm"],
        seed=opts["seed"],
    )

    def progress(result: SizeResult) -> None:
        if not opts["quiet"]:
            err.print(
                f"size {result.size}: {result.ok}/{result.records} answered, {result.requests} requests, "
                f"{result.elapsed_s:.1f} s",
                highlight=False,
                markup=False,
            )

    report = asyncio.run(
        _tune.tune(
            task,
            records,
            lambda: create_provider(name, config),
            sizes=sizes,
            sample=len(records),
            seed=opts["seed"],
            min_agreement=opts["min_agreement"],
            options=options,
            prices=prices,
            max_cost=max_cost,
            progress=progress,
        )
    )
    out = Console(width=max(110, Console().width))  # the table is ~100 columns: never squeezed
    title = f"llmbatch tune · {task.name} · {probe.model} · {report.sample:,} records"
    out.print(tune_table(report, title=escape(title)))
    out.print(_verdict(report), highlight=False, markup=False)
    if report.skipped:
        skipped = ", ".join(map(str, report.skipped))
        out.print(f"not measured (--max-cost reached): {skipped}", highlight=False, markup=False)
    spent = report.cost
    out.print(
        f"tune spent {'an unknown amount' if spent is None else f'${spent:.4f}'}",
        highlight=False,
        markup=False,
    )
    if opts["save"]:
        path = save_tuned(opts["task_path"], task, report, model=probe.model, endpoint=probe.endpoint)
        out.print(
            f"saved to {path}: run --batch-size auto packs at most {report.recommended} records "
            f"per request for this task and model",
            highlight=False,
            markup=False,
        )


COMMANDS: list[click.Command] = [tune]
"""Commands for ``cli.main`` to attach (``for command in COMMANDS: main.add_command(command)``)."""
