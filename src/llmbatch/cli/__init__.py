"""The command line: a thin layer over the facade. The one place that calls ``asyncio.run``.

Exit codes: 0 every record ok · 2 usage error · 3 some records failed ·
4 the job stopped (auth, quota, budget, outage, disk; state saved, resumable) ·
130 interrupted (Ctrl-C) · 143 terminated (SIGTERM); both save state too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from .. import __version__
from .._engine.policy import RetryPolicy
from .._engine.runner import RunOptions
from .._exceptions import FatalError, JobStopped, LLMBatchError, UsageError
from .._io import open_reader
from .._jobs.estimate import estimate_job
from .._jobs.job import JobResult, JobSpec, check_paths, default_job_dir, run_job
from .._jobs.tune import load_tuned_ceiling, tuned_path
from .._jobs.vote import vote
from .._metrics import Metrics
from .._pack import PACKERS
from .._pricing import PriceTable
from .._store.cache import default_cache_dir
from .._task import Task
from ..providers import ProviderConfig, create_provider
from ..providers.base import Provider
from ..report.progress import ProgressView
from .options import default_provider, local_model_options, provider_config
from .tables import estimate_table, metrics_table
from .tune import COMMANDS as QUALITY_COMMANDS
from .tune import vote_table

# Errors exit with their class's ``exit_code`` (usage 2, stopped 4; _exceptions.py).
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 3, 130, 143

# soft_wrap: a message is one line even when stderr is a pipe or a log file, where
# rich would otherwise wrap it at 80 columns.
err = Console(stderr=True, soft_wrap=True)


class _Group(click.Group):
    """Turns expected errors into one line and an exit code, never a traceback.

    ``sim`` is loaded on first use: it imports the web server, which other
    commands do not need at start-up.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "sim"})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "sim" and name not in self.commands:
            from ..sim.cli import sim

            self.add_command(sim)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LLMBatchError as exc:
            # The one place an error becomes its line and exit code, both told by the exception:
            # "error:" 2 for usage, "stopped:" 4 for a job that stopped resumable, "error:" 1 else.
            err.print(f"[red]{exc.label}:[/] {escape(str(exc))}", highlight=False)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            # Ctrl-C before a job started (``run`` handles it once the job runs).
            err.print("interrupted", highlight=False)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llmbatch")
def main() -> None:
    """Run one LLM task over every record of a dataset: packed, parallel, resumable.

    \b
    Example:
      llmbatch run examples/reviews.jsonl --task examples/sentiment.toml --provider sim --out out.jsonl
    """


class _BatchSize(click.ParamType):  # type: ignore[type-arg]
    """A whole number of records per request, or ``auto``."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | None:
        if value is None or value == "auto":
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither a whole number nor 'auto'", param, ctx)
        if not 1 <= number <= 1000:
            self.fail("must be from 1 to 1000, or auto", param, ctx)
        return number


def _notice(text: str) -> None:
    err.print(text, highlight=False)


def _spec(opts: dict[str, Any], task: Task, output: str) -> JobSpec:
    cache_dir = None if opts["no_cache"] else (opts["cache_dir"] or default_cache_dir())
    return JobSpec(
        task=task,
        input=opts["input_path"],
        output=output,
        job_dir=opts["job_dir"] or default_job_dir(opts["input_path"], task),
        options=RunOptions(
            batch_size=opts["batch_size"],
            max_batch_size=opts["max_batch_size"],
            concurrency=opts["concurrency"],
            pack=opts["pack"],
            policy=RetryPolicy(max_attempts=opts["max_attempts"], outage_after=opts["outage_timeout"]),
            timeout=opts["timeout"],
            rpm=opts["rpm"],
            tpm=opts["tpm"],
            seed=opts["seed"],
            shuffle=not opts["no_shuffle"],
            max_cost=opts["max_cost"],
            mode=opts["mode"],
            poll_interval=opts["poll_interval"],
            retry_failed=opts["retry_failed"],
        ),
        prices=PriceTable.load(opts["prices"]),
        restart=opts["restart"],
        cache_dir=cache_dir,
        command=_command_line(),
    )


async def _run_with_progress(
    spec: JobSpec,
    backend: Provider,
    notify: Callable[[str], None] | None,
    opts: dict[str, Any],
    metrics: Metrics,
) -> JobResult:
    exporter = None
    if opts["metrics_port"] is not None:
        from ..report.prometheus import serve_metrics

        try:
            exporter = serve_metrics(metrics, opts["metrics_port"])
        except OSError as exc:
            raise UsageError(f"cannot serve metrics on 127.0.0.1:{opts['metrics_port']}: {exc}") from exc
    view = None
    if not opts["quiet"]:
        view = ProgressView(metrics, err, interval=opts["progress_interval"])
        view.start()
    try:
        return await run_job(spec, backend, metrics=metrics, notify=notify, provider_for=opts["provider_for"])
    finally:
        if view is not None:
            await view.stop()
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()


@contextlib.contextmanager
def _logging(job_dir: Path, verbose: bool) -> Iterator[None]:
    """stderr gets warnings (everything with --verbose); ``<job dir>/llmbatch.log`` gets everything.

    Only llmbatch's own logger goes to the file: the SDK's and HTTP stack's debug
    output would flood it and may carry request details.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    job_dir.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(job_dir / "llmbatch.log", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("llmbatch")
    logger.addHandler(file_handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(file_handler)
        file_handler.close()


def _command_line() -> list[str]:
    """This process's command line with any --api-key value blanked out."""
    args = ["llmbatch", *sys.argv[1:]]
    cleaned: list[str] = []
    hide = False
    for arg in args:
        if hide:
            cleaned.append("***")
            hide = False
        elif arg == "--api-key":
            cleaned.append(arg)
            hide = True
        elif arg.startswith("--api-key="):
            cleaned.append("--api-key=***")
        else:
            cleaned.append(arg)
    return cleaned


def _attach_report_commands() -> None:
    from .jobs import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_attach_report_commands()


def _run_on_ray(
    opts: dict[str, Any], spec: JobSpec, provider: str, config: ProviderConfig, out: Console
) -> None:
    """``run --engine ray``: the same job on Ray workers (docs/scale-out.md); exits like ``run``."""
    from ..ray import run_ray

    if opts["votes"] > 1:
        raise UsageError("--votes does not run on the Ray engine yet; run without --engine ray")

    summary = run_ray(
        spec.input,
        spec.task,
        spec.output or "-",
        workers=opts["workers"],
        ray_address=opts["ray_address"],
        provider=provider,
        provider_config=config,
        options=spec.options,
        cache_dir=spec.cache_dir,
        prices=spec.prices,
    )
    _write_metrics(opts, summary)
    if not opts["quiet"]:
        title = f"llmbatch · {spec.task.name} · {config.model or provider} · ray × {opts['workers']}"
        out.print(metrics_table(summary, title=escape(title)))
        if spec.output != "-":
            out.print(
                f"wrote {summary['rows_written']:,} rows to {spec.output}", highlight=False, markup=False
            )
    sys.exit(EXIT_OK if summary["items_failed"] == 0 else EXIT_FAILED)


@main.command(
    epilog="""\b
Examples:
  llmbatch run reviews.jsonl --task sentiment.toml --out labels.jsonl          (local model)
  llmbatch run reviews.jsonl --task sentiment.toml --provider sim --out labels.jsonl
  OPENAI_API_KEY=... llmbatch run data.csv --task extract.toml --model gpt-4o-mini --out out.csv
  llmbatch run data.jsonl --task t.toml --base-url http://127.0.0.1:8000/v1 --pack numbered
"""
)
@click.argument("input_path", metavar="INPUT")
@click.option("--task", "task_path", required=True, type=click.Path(dir_okay=False), help="Task file (TOML).")
@click.option("--out", "output", help="Output .jsonl or .csv (- for stdout). Default: <input>-<task>.jsonl")
@click.option(
    "--provider", help="openai, anthropic, local, sim. Default: the one whose key or URL is set, else local."
)
@click.option("--model", help="Model name.")
@local_model_options
@click.option("--base-url", help="The provider's endpoint (openai: also env OPENAI_BASE_URL).")
@click.option(
    "--response-format",
    type=click.Choice(["json_schema", "json_object"]),
    help="How the json pack asks for its schema: json_schema (OpenAI form, default) or "
    "json_object (llama-cpp-python's server).",
)
@click.option(
    "--schema-in-prompt",
    is_flag=True,
    default=None,
    help="State the answer schema in the prompt too: for servers that constrain decoding "
    "without showing the model the schema (vLLM, llama.cpp). Hosted APIs show it themselves.",
)
@click.option("--api-key", help="API key; better set OPENAI_API_KEY / ANTHROPIC_API_KEY.")
@click.option(
    "--pack", type=click.Choice(sorted(PACKERS)), help="Pack format. Default: json where supported."
)
@click.option(
    "--batch-size", type=_BatchSize(), default="auto", show_default=True, help="Records per request."
)
@click.option("--max-batch-size", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1000),
    help="A cap on requests in flight. Default: none; it ramps to what the limits and latency call for.",
)
@click.option("--max-attempts", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option(
    "--mode",
    type=click.Choice(["sync", "batch"]),
    default="sync",
    show_default=True,
    help="sync: requests now; batch: the provider's batch API (half price, results within 24 h, "
    "resumable: a re-run re-attaches to submitted batches).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.1),
    default=5.0,
    show_default=True,
    help="Batch mode: seconds before the first poll of a batch (grows to a minute).",
)
@click.option(
    "--timeout", type=click.FloatRange(0.1), default=120.0, show_default=True, help="Per request, s."
)
@click.option(
    "--outage-timeout",
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    help="Stop the job (exit 4, resumable) once the endpoint has been unreachable this many seconds; "
    "records are never failed for it.",
)
@click.option("--rpm", type=click.FloatRange(1), help="Requests per minute (else learnt from headers).")
@click.option("--tpm", type=click.FloatRange(1), help="Tokens per minute (else learnt from headers).")
@click.option(
    "--job-dir", type=click.Path(file_okay=False, path_type=Path), help="Default .llmbatch/<input>-<task>"
)
@click.option("--restart", is_flag=True, help="Forget the job's state and start over.")
@click.option(
    "--retry-failed/--no-retry-failed",
    default=True,
    show_default=True,
    help="On a re-run, ask again the records that failed for reasons that may pass (timeouts, "
    "server errors, missing or invalid answers); unreadable or too-large records stay failed.",
)
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Shared result cache.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option("--prices", type=click.Path(dir_okay=False), help="JSON price table over the shipped one.")
@click.option(
    "--max-cost",
    type=click.FloatRange(0, min_open=True),
    help="Budget in USD for the job over all its runs: stop before passing it.",
)
@click.option(
    "--metrics-out", type=click.Path(dir_okay=False, path_type=Path), help="Write final metrics JSON."
)
@click.option(
    "--metrics-port", type=click.IntRange(0, 65535), help="Serve live Prometheus metrics on 127.0.0.1:P."
)
@click.option(
    "--progress-interval",
    type=click.FloatRange(0.1),
    default=10.0,
    show_default=True,
    help="Seconds between progress lines when output is not a terminal.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for jitter and shuffling.")
@click.option("--no-shuffle", is_flag=True, help="Pack records in input order (default: seeded shuffle).")
@click.option(
    "--votes",
    type=click.IntRange(1, 15),
    default=1,
    show_default=True,
    help="Answer each record in K differently shuffled packs and keep the majority "
    "(adds agreement and votes columns; votes after the 2nd only where the majority is not yet certain).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: this process; ray: Ray workers sharing one rate limit (pip install 'llmbatch[ray]').",
)
@click.option(
    "--workers", type=click.IntRange(1), default=2, show_default=True, help="Ray workers (--engine ray)."
)
@click.option("--ray-address", help="Ray cluster to join (auto: the running one). Default: a local Ray.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors.")
@click.option("--verbose", "-v", is_flag=True, help="Log every failed request.")
def run(**opts: Any) -> None:
    """Run TASK over every record of INPUT (.jsonl or .csv; - for stdin)."""
    task = Task.from_file(opts["task_path"])
    stem = "stdin" if opts["input_path"] == "-" else Path(opts["input_path"]).stem
    output = opts["output"] or f"{stem}-{task.name}.jsonl"
    config = provider_config(opts)
    if task.models and not opts["model"]:
        config = dataclasses.replace(config, model=task.models[0])
    provider_name = opts["provider"] or default_provider(opts, notice=_notice)
    backend = create_provider(provider_name, config)
    opts["provider_for"] = lambda model: create_provider(
        provider_name, dataclasses.replace(config, model=model)
    )
    _apply_tuned_ceiling(opts, task, backend.model)
    spec = _spec(opts, task, output)
    check_paths(spec)  # before a local model loads or a Ray cluster starts
    to_stdout = output == "-"
    out = Console(stderr=to_stdout)
    if opts["engine"] == "ray":
        _run_on_ray(opts, spec, provider_name, config, out)
    notify = None if opts["quiet"] else lambda notice: err.print(notice, highlight=False, markup=False)
    metrics = Metrics()
    title = escape(f"llmbatch · {task.name} · {backend.model}")
    terminated = _terminate_like_interrupt()
    try:
        with _logging(spec.job_dir, opts["verbose"]):
            if opts["votes"] > 1:
                _run_votes(spec, lambda: create_provider(provider_name, config), notify, opts, out)
            result = asyncio.run(_run_with_progress(spec, backend, notify, opts, metrics))
    except (JobStopped, FatalError) as exc:
        # What this run did, spend against the budget included; the error's own line and exit
        # code follow from _Group.invoke.
        summary = metrics.summary()
        _write_metrics(opts, summary)
        if not opts["quiet"] and metrics.started:
            out.print(metrics_table(summary, title=title))
        _print_written(exc.rows_written, output, out, opts)
        raise
    except KeyboardInterrupt:
        what = "terminated" if terminated() else "interrupted"
        written = "" if to_stdout else f"; the answers so far are in {output}"
        err.print(
            f"{what}: state saved{written}; run the same command again to resume (job dir {spec.job_dir})",
            highlight=False,
            markup=False,
        )
        sys.exit(EXIT_TERMINATED if terminated() else EXIT_INTERRUPTED)
    summary = result.metrics.summary()
    _write_metrics(opts, summary)
    if not opts["quiet"]:
        out.print(metrics_table(summary, title=title))
        if not to_stdout:
            out.print(f"wrote {result.rows_written:,} rows to {output}", highlight=False, markup=False)
    sys.exit(EXIT_OK if result.all_ok else EXIT_FAILED)


def _terminate_like_interrupt() -> Callable[[], bool]:
    """SIGTERM (docker stop, Kubernetes, systemd, Slurm) stops the job as Ctrl-C does: state
    saved, output written. Returns whether it was SIGTERM, for the message and exit 143."""
    received: list[int] = []

    def on_term(signum: int, frame: object) -> None:
        received.append(signum)
        # Ctrl-C's path: asyncio.run cancels the job and raises KeyboardInterrupt here.
        signal.raise_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, on_term)
    return lambda: bool(received)


def _print_written(rows: int | None, output: str, out: Console, opts: dict[str, Any]) -> None:
    if rows is not None and output != "-" and not opts["quiet"]:
        out.print(
            f"wrote {rows:,} rows to {output} (answers so far; the rest are stopped rows)",
            highlight=False,
            markup=False,
        )


def _write_metrics(opts: dict[str, Any], summary: dict[str, Any]) -> None:
    if opts["metrics_out"] is not None:
        opts["metrics_out"].write_text(json.dumps(summary, indent=2), encoding="utf-8")


def _apply_tuned_ceiling(opts: dict[str, Any], task: Task, model: str) -> None:
    """``--batch-size auto`` packs at most what ``tune --save`` measured, unless --max-batch-size is given."""
    if opts["batch_size"] is not None:
        return
    source = click.get_current_context().get_parameter_source("max_batch_size")
    if source is click.core.ParameterSource.COMMANDLINE:
        return
    ceiling = load_tuned_ceiling(opts["task_path"], task, model=model)
    if ceiling is None:
        return
    opts["max_batch_size"] = ceiling
    if not opts["quiet"]:
        where = tuned_path(opts["task_path"])
        err.print(f"packing at most {ceiling} records per request, as tuned ({where})", highlight=False)


def _run_votes(
    spec: JobSpec,
    factory: Callable[[], Provider],
    notify: Callable[[str], None] | None,
    opts: dict[str, Any],
    out: Console,
) -> None:
    """``run --votes K``: permutation voting, one job per pass under ``<job dir>/vote-k``; exits."""
    report = asyncio.run(
        vote(
            spec.task,
            spec.input,
            spec.output,
            factory,
            votes=opts["votes"],
            options=spec.options,
            job_root=spec.job_dir,
            prices=spec.prices,
            restart=spec.restart,
            notify=notify,
            provider_for=opts["provider_for"],
        )
    )
    passes = [p.summary for p in report.passes]
    _write_metrics(opts, {"votes": report.votes, "extra_requests": report.extra_requests, "passes": passes})
    if not opts["quiet"]:
        if report.passes:
            first = report.passes[0].summary
            out.print(metrics_table(first, title=escape(f"llmbatch · {spec.task.name} · pass 1")))
        out.print(vote_table(report, title=escape(f"llmbatch · {spec.task.name} · {report.votes} votes")))
        if spec.output != "-":
            out.print(f"wrote {report.rows_written:,} rows to {spec.output}", highlight=False, markup=False)
    sys.exit(EXIT_OK if report.failed == 0 else EXIT_FAILED)


@main.command(
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
    packer = PACKERS[opts["pack"]]
    if packer.text_only and not task.is_text:
        raise UsageError(f"the {packer.name} pack format is for free-text answers; use json or numbered")
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


for _command in QUALITY_COMMANDS:  # tune (tune_commands.py)
    main.add_command(_command)
