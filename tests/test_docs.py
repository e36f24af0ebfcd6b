"""Every example in docs/ and the README runs: shell lines through the CLI, Python blocks by exec."""

from __future__ import annotations

import re
import shlex
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmbatch.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"```(bash|python)\n(.*?)```", re.S)


def _blocks(kind: str) -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for number, match in enumerate(BLOCK.finditer(doc.read_text(encoding="utf-8"))):
            if match.group(1) == kind:
                found.append((f"{doc.name}#{number}", match.group(2)))
    return found


@pytest.fixture
def in_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch working directory that sees the examples, and a private cache dir."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize(("where", "block"), _blocks("bash"), ids=[w for w, _ in _blocks("bash")])
def test_shell_examples_run(where: str, block: str, in_project: Path) -> None:
    commands = [line for line in block.splitlines() if line.startswith("llmbatch ")]
    if not commands:
        pytest.skip(f"{where} runs no llmbatch command")
    for command in commands:
        result = CliRunner().invoke(main, shlex.split(command)[1:])
        assert result.exit_code == 0, f"{where}: {command}\n{result.output}"
        assert "Traceback" not in result.output


@pytest.mark.parametrize(("where", "block"), _blocks("python"), ids=[w for w, _ in _blocks("python")])
def test_python_examples_run(
    where: str, block: str, in_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real module, so that pydantic can resolve the example's annotations.
    module = types.ModuleType("docs_example")
    monkeypatch.setitem(sys.modules, "docs_example", module)
    exec(compile(block, where, "exec"), module.__dict__)
