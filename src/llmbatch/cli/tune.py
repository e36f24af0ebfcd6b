"""``llmbatch tune``: find the largest pack size whose answers still match one-at-a-time answers.

The command is attached to the main group by ``cli.py`` (``COMMANDS``); the
measuring is ``_tune``'s, the table and the wording are here.

    llmbatch tune reviews.jsonl --task sentiment.toml --model gpt-4o-mini --save
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Iterable
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._engine.policy import RetryPolicy
from .._engine.runner import RunOptions
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
    save_tuned,
)
from .._jobs.vote import VoteReport
from .._pack import PACKERS
from .._pricing import PriceTable, price_for
from .._task import Task
from ..providers import create_provider
from .options import default_provider, local_model_options, provider_config

__all__ = ["COMMANDS", "reservoir_sample", "tune", "tune_table", "vote_table"]

err = Console(stderr=True, soft_wrap=True)


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


def reservoir_sample(records: Iterable[dict[str, Any]], size: int, seed: int) -> list[dict[str, Any]]:
    """``size`` records chosen uniformly in one pass (Algorithm R), returned in input order.

    The input is streamed: memory holds the sample, not the file.
    """
    rng = random.Random(seed)
    kept: list[tuple[int, dict[str, Any]]] = []
    for seen, record in enumerate(records):
        if seen < size:
            kept.append((seen, record))
            continue
        slot = rng.randint(0, seen)
        if slot < size:
            kept[slot] = (seen, record)
    return [record for _, record in sorted(kept, key=lambda pair: pair[0])]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


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
        agreement = _pct(row.agreement)
        mark = ""
        if row.size == report.recommended:
            mark = "[bold green]◀ best[/]"
        elif below:
            mark = "[red]< floor[/]"
        table.add_row(
            str(row.size),
            _pct(row.first_try_rate),
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
        ("mean agreement", _pct(report.mean_agreement)),
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
    floor = _pct(report.min_agreement)
    if best == 1 and any(r.size > 1 for r in report.sizes):
        return f"no pack size kept agreement ≥ {floor}: recommended 1 record per request"
    chosen = report.result(best)
    detail = "" if chosen is None else f" (agreement {_pct(chosen.agreement)})"
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
    probe = create_provider(name, config)  # not started: only its model, price and pack format
    packer = PACKERS[opts["pack"] or probe.default_pack]
    if packer.text_only and not task.is_text:
        raise UsageError(f"the {packer.name} pack format is for free-text answers; use json or numbered")
    prices = PriceTable.load(opts["prices"])
    price = price_for(probe.model, billed=probe.billed, prices=prices)
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
