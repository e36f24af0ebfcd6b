"""The command line: a thin layer over the facade. The one place that calls ``asyncio.run``.

Exit codes: 0 every record ok · 2 usage error · 3 some records failed ·
4 the job stopped (auth, quota; state saved, resumable) · 130 interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from . import __version__
from ._exceptions import FatalError, LLMBatchError, UsageError
from ._job import JobSpec, default_job_dir, run_job
from ._packing import PACKERS
from ._policy import RetryPolicy
from ._pricing import PriceTable
from ._runner import RunOptions
from ._task import Task
from .providers import ProviderConfig, create_provider
from .report.table import metrics_table

EXIT_OK, EXIT_USAGE, EXIT_FAILED, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 2, 3, 4, 130

err = Console(stderr=True)


class _Group(click.Group):
    """Turns expected errors into one line and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False)
            ctx.exit(EXIT_USAGE)
        except FatalError as exc:
            err.print(f"[red]stopped:[/] {exc}", highlight=False)
            ctx.exit(EXIT_STOPPED)
        except LLMBatchError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llmbatch")
def main() -> None:
    """Run one LLM task over every record of a dataset: packed, parallel, resumable.

    \b
    Example:
      llmbatch run examples/reviews.jsonl --task examples/sentiment.toml --provider sim --out out.jsonl
    """


@main.command(
    epilog="""\b
Examples:
  llmbatch run reviews.jsonl --task sentiment.toml --provider sim --out labels.jsonl
  OPENAI_API_KEY=... llmbatch run data.csv --task extract.toml --model gpt-4o-mini --out out.csv
  llmbatch run data.jsonl --task t.toml --base-url http://127.0.0.1:8000/v1 --pack numbered
"""
)
@click.argument("input_path", metavar="INPUT")
@click.option("--task", "task_path", required=True, type=click.Path(dir_okay=False), help="Task file (TOML).")
@click.option(
    "--out",
    "output",
    help="Output file (.jsonl or .csv; - for stdout). Default: <input>-<task>.jsonl",
)
@click.option("--provider", default=None, help="openai, sim. Default: openai.")
@click.option("--model", default=None, help="Model name.")
@click.option(
    "--base-url",
    default=None,
    envvar="OPENAI_BASE_URL",
    help="OpenAI-compatible endpoint (env OPENAI_BASE_URL).",
)
@click.option("--api-key", default=None, help="API key (better: the OPENAI_API_KEY environment variable).")
@click.option(
    "--pack",
    type=click.Choice(sorted(PACKERS)),
    default=None,
    help="Pack format. Default: json where supported.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Records per request.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1000),
    default=8,
    show_default=True,
    help="Requests in flight.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="Answer attempts per record.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1),
    default=120.0,
    show_default=True,
    help="Seconds per request.",
)
@click.option("--rpm", type=click.FloatRange(1), default=None, help="Requests per minute limit.")
@click.option("--tpm", type=click.FloatRange(1), default=None, help="Tokens per minute limit.")
@click.option(
    "--job-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the job's state lives. Default: .llmbatch/<input>-<task>",
)
@click.option("--restart", is_flag=True, help="Forget the job's state and start over.")
@click.option(
    "--prices",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON price table overriding the shipped one.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for jitter and shuffling.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors.")
@click.option("--verbose", "-v", is_flag=True, help="Log every failed request.")
def run(
    input_path: str,
    task_path: str,
    output: str | None,
    provider: str | None,
    model: str | None,
    base_url: str | None,
    api_key: str | None,
    pack: str | None,
    batch_size: int,
    concurrency: int,
    max_attempts: int,
    timeout: float,
    rpm: float | None,
    tpm: float | None,
    job_dir: Path | None,
    restart: bool,
    prices: str | None,
    seed: int,
    quiet: bool,
    verbose: bool,
) -> None:
    """Run TASK over every record of INPUT (.jsonl or .csv; - for stdin)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    task = Task.from_file(task_path)
    output = output or f"{'stdin' if input_path == '-' else Path(input_path).stem}-{task.name}.jsonl"
    config = ProviderConfig(model=model, base_url=base_url, api_key=api_key, timeout=timeout)
    backend = create_provider(provider or "openai", config)
    spec = JobSpec(
        task=task,
        input=input_path,
        output=output,
        job_dir=job_dir or default_job_dir(input_path, task),
        options=RunOptions(
            batch_size=batch_size,
            concurrency=concurrency,
            pack=pack,
            policy=RetryPolicy(max_attempts=max_attempts),
            timeout=timeout,
            rpm=rpm,
            tpm=tpm,
            seed=seed,
        ),
        prices=PriceTable.load(prices),
        restart=restart,
    )
    to_stdout = output == "-"
    out = Console(stderr=to_stdout)
    try:
        result = asyncio.run(run_job(spec, backend))
    except KeyboardInterrupt:
        err.print(f"interrupted: state saved; run the same command again to resume (job dir {spec.job_dir})")
        sys.exit(EXIT_INTERRUPTED)
    if not quiet:
        for notice in result.notices:
            err.print(notice, highlight=False)
        out.print(metrics_table(result.metrics.summary(), title=f"llmbatch · {task.name} · {backend.model}"))
        if not to_stdout:
            out.print(f"wrote {result.rows_written:,} rows to {output}", highlight=False)
    sys.exit(EXIT_OK if result.all_ok else EXIT_FAILED)


def _attach_sim() -> None:
    from .sim.cli import sim

    main.add_command(sim)


_attach_sim()
