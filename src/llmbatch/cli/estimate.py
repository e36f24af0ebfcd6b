"""``llmbatch estimate``: tokens, cost and time of a job, from its records, without calling an API."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from .._io import open_reader
from .._jobs.estimate import estimate_job
from .._pack import PACKERS, choose_packer
from .._pricing import PriceTable
from .._task import Task
from .tables import estimate_table


@click.command(
    epilog="""\b
Examples:
  llmbatch estimate reviews.jsonl --task sentiment.toml --model gpt-4o-mini
  llmbatch estimate big.jsonl --task extract.toml --model gpt-4.1-mini --sample 2000 --rpm 500 --tpm 200000
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
def estimate(**opts: Any) -> None:
    """Estimate tokens, cost and time of running TASK over INPUT, without calling any API."""
    task = Task.from_file(opts["task_path"])
    packer = choose_packer(opts["pack"], task)
    price = PriceTable.load(opts["prices"]).get(opts["model"])
    report = estimate_job(
        task,
        open_reader(opts["input_path"]),
        packer,
        batch_size=opts["batch_size"],
        price=price,
        sample=opts["sample"],
    )
    out = Console(width=max(160, Console().width))
    out.print(estimate_table(report, model=opts["model"], rpm=opts["rpm"], tpm=opts["tpm"]))
    if report.extrapolated:
        out.print(
            f"extrapolated from the first {report.sampled:,} of {report.records:,} records", highlight=False
        )
    if price is None:
        out.print(
            f"no price for model {opts['model']!r}: cost unknown (add it with --prices)", highlight=False
        )
