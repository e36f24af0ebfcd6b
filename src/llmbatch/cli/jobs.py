"""The ``status`` and ``report`` commands. The CLI attaches them: ``for c in COMMANDS: main.add_command(c)``.

Both only read the job's store (read-only, one snapshot), so they are safe while
the job runs. A missing job is a ``UsageError``: the main group prints it as one
line and exits 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from ..report.html import render_report
from ..report.status import job_status, status_table

__all__ = ["COMMANDS", "report", "status"]


@click.command(
    epilog="""\b
Examples:
  llmbatch status .llmbatch/reviews-sentiment
  llmbatch status .llmbatch/reviews-sentiment --json | jq .projected_spend_usd
"""
)
@click.argument("job_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
def status(job_dir: Path, as_json: bool) -> None:
    """How the job in JOB_DIR is going: records, rates, spend, failures, the command to resume.

    Works while the job runs (it only reads) and after it finished.
    """
    figures = job_status(job_dir)
    if as_json:
        click.echo(json.dumps(figures, indent=2, ensure_ascii=False))
    else:
        Console().print(status_table(figures))


@click.command(
    epilog="""\b
Examples:
  llmbatch report .llmbatch/reviews-sentiment                 (writes .llmbatch/reviews-sentiment/report.html)
  llmbatch report .llmbatch/reviews-sentiment --html run.html
"""
)
@click.argument("job_dir", type=click.Path(path_type=Path))
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the report. Default: JOB_DIR/report.html, and the status table is printed too.",
)
def report(job_dir: Path, html_path: Path | None) -> None:
    """Write a self-contained HTML report of the job in JOB_DIR: charts, spend, failed records.

    The page needs no network to view: open it in any browser, attach it, archive it.
    """
    path = render_report(job_dir, html_path or job_dir / "report.html")
    if html_path is None:
        Console().print(status_table(job_status(job_dir)))
    click.echo(str(path))


COMMANDS: list[click.Command] = [status, report]
"""The commands to attach to the main CLI group."""
