"""Fixtures of the report tests: one finished simulator job shared by the session, the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from _report_helpers import run_sim_job

from llmbatch.cli import main
from llmbatch.cli.jobs import COMMANDS


@pytest.fixture(scope="session")
def sim_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 300-record job with failed records and failed requests (read it, do not change it)."""
    return run_sim_job(tmp_path_factory.mktemp("sim-job"))


@pytest.fixture
def cli() -> Iterator[click.Group]:
    """``llmbatch`` with ``status`` and ``report`` attached, as the CLI will attach them."""
    added = [command for command in COMMANDS if command.name not in main.commands]
    for command in added:
        main.add_command(command)
    yield main
    for command in added:
        assert command.name is not None
        main.commands.pop(command.name, None)
