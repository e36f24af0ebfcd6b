"""The command line: a thin layer over the facade, one module per command group.

``run`` (``run.py``), ``estimate`` (``estimate.py``), ``tune`` (``tune.py``),
``status`` and ``report`` (``jobs.py``), ``sim`` (``llmbatch.sim.cli``, loaded on
first use). The tables they print are in ``tables.py``, the shared provider
options in ``options.py``, the console and exit codes in ``_console.py``. Every
expected error becomes one line and its exit code in ``_Group.invoke``, the
one place that does.
"""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape

from .. import __version__
from .._exceptions import LLMBatchError
from . import jobs, tune
from ._console import EXIT_INTERRUPTED, err
from .estimate import estimate
from .run import run

__all__ = ["main"]


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


for _command in (run, estimate, *tune.COMMANDS, *jobs.COMMANDS):
    main.add_command(_command)
