"""``llmbatch run``: one task over every record of a file or stdin, on this machine or on Ray.

Why one module: it is one command. Its options and the helpers that turn them into a job
(the spec, logging, progress, votes, the Ray path, the exits) change together whenever
an option does.
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

from .._engine.policy import FLEX_FALLBACKS, RetryPolicy
from .._exceptions import FatalError, JobStopped, UsageError
from .._jobs.job import JobResult, JobSpec, check_paths, default_job_dir, job_name, run_job
from .._jobs.tune import load_tuned_ceiling, tuned_path
from .._jobs.vote import vote
from .._metrics import Metrics
from .._options import CACHE_RETENTIONS, DEFAULT_TIMEOUT, FLEX_TIMEOUT, RunOptions
from .._pack import PACKERS
from .._pricing import PriceTable
from .._store.cache import default_cache_dir
from .._task import Task
from ..providers import ProviderConfig, create_provider
from ..providers.base import Provider
from ..providers.batch_shapes import BATCH_APIS
from ..report.progress import ProgressView
from ..report.status import blank_secrets
from ._console import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, err
from .options import (
    check_provider_options,
    default_provider,
    local_model_options,
    provider_config,
    to_seconds,
)
from .tables import metrics_table, vote_table


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
            policy=RetryPolicy(
                max_attempts=opts["max_attempts"],
                outage_after=opts["outage_timeout"],
                flex_deadline=opts["flex_deadline"],
                flex_fallback=opts["flex_fallback"],
            ),
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
    return blank_secrets(["llmbatch", *sys.argv[1:]])


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


@click.command(
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
    "--provider",
    help="openai, anthropic, gemini, local, sim. Default: the one whose key or URL is set, else local.",
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
@click.option(
    "--cache-retention",
    type=click.Choice(CACHE_RETENTIONS),
    help="How long the provider keeps the prompt prefix cached: in_memory or 24h (OpenAI), 5m or "
    "1h (Anthropic). Default: the provider's (Anthropic batch lines: 1h).",
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
    type=click.Choice(["sync", "flex", "batch"]),
    default="sync",
    show_default=True,
    help="sync: requests now; flex: requests now at OpenAI's flex tier (batch prices, slower, "
    "sometimes 'resource unavailable': retried, see --flex-fallback); batch: the provider's batch "
    "API (half price, results within 24 h, resumable: a re-run re-attaches to submitted batches).",
)
@click.option(
    "--batch-api",
    type=click.Choice(sorted(BATCH_APIS)),
    help="Batch mode: which OpenAI-shaped batch API --base-url speaks (openai, groq, together, "
    "deepinfra). Default: known from the URL's host, else openai's.",
)
@click.option(
    "--completion-window",
    help="Batch mode: the window asked for (24h; Groq takes up to 7d). Default: 24h.",
)
@click.option(
    "--flex-fallback",
    type=click.Choice(FLEX_FALLBACKS),
    default="sync",
    show_default=True,
    help="Flex mode: records that keep meeting 'resource unavailable' past --flex-deadline are "
    "sent at the default tier (sync, full price), through the batch API (batch), or failed (fail; "
    "a re-run asks again).",
)
@click.option(
    "--flex-deadline",
    callback=to_seconds,
    default="10m",
    show_default=True,
    help="Flex mode: how long a record may keep meeting 'resource unavailable' before "
    "--flex-fallback (90s, 10m, 2h).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.1),
    default=5.0,
    show_default=True,
    help="Batch mode: seconds before the first poll of a batch (grows to a minute).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1),
    help="Per request, s. Default: 120; 900 with --mode flex (its answers queue, as OpenAI's guide says).",
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
    output = opts["output"] or f"{job_name(opts['input_path'], task)}.jsonl"
    if opts["timeout"] is None:
        opts["timeout"] = FLEX_TIMEOUT if opts["mode"] == "flex" else DEFAULT_TIMEOUT
    config = provider_config(opts)
    if task.models and not opts["model"]:
        config = dataclasses.replace(config, model=task.models[0])
    provider_name = opts["provider"] or default_provider(opts, notice=_notice)
    check_provider_options(provider_name, opts)
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
