"""docs/ARCHITECTURE.md's module table matches the tree: every module named, nothing that is gone.

A row's first cell names top-level modules (``_task.py``) or one package (``_engine/``);
a package's row must name each of its modules (``runner.py``) somewhere in the row.
The "Where a change goes" table may only point at files that exist, and a module
over 400 lines says in its docstring why it is still one concept.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "llmbatch"
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
NAME = re.compile(r"`([\w/.]+)`")


def _section(title: str) -> str:
    start = DOC.index(title)
    end = DOC.find("\n#", start + len(title))
    return DOC[start : end if end != -1 else None]


def _rows(section: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| `")
    ]


def _named_modules() -> set[str]:
    named: set[str] = set()
    for cells in _rows(_section("## Modules (src/llmbatch/)")):
        row = " | ".join(cells)
        for first in NAME.findall(cells[0]):
            if first.endswith("/"):
                named.add(first)
                named.update(
                    first + name for name in NAME.findall(row) if name.endswith(".py") and "/" not in name
                )
            else:
                named.add(first)
    return named


def test_the_module_table_names_every_module_and_no_other() -> None:
    expected: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        module = str(path.relative_to(PACKAGE))
        if path.parent == PACKAGE:
            expected.add(module)
        elif path.name == "__init__.py":
            expected.add(module.removesuffix("__init__.py"))  # the package, named by its row
        else:
            expected.add(module)
    named = {name for name in _named_modules() if not name.endswith("/__init__.py")}
    assert sorted(expected - named) == [], "modules missing from docs/ARCHITECTURE.md"
    assert sorted(named - expected) == [], "docs/ARCHITECTURE.md names modules that do not exist"


def test_where_a_change_goes_points_at_files_that_exist() -> None:
    section = _section("### Where a change goes")
    paths = {name for name in NAME.findall(section) if "/" in name and name.endswith(".py")}
    assert paths
    for path in sorted(paths):
        if "<name>" in path:
            assert (PACKAGE / path.split("/")[0]).is_dir(), path
            continue
        assert (PACKAGE / path).is_file() or (ROOT / path).is_file(), path


LONG_MODULE = 400
"""Lines past which a module must say, in its docstring, why it is still one concept."""


def test_a_long_module_says_why_it_is_one() -> None:

    unexplained = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= LONG_MODULE:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if "Why one module:" not in docstring:
            unexplained.append(f"{path.relative_to(PACKAGE)} ({text.count(chr(10))} lines)")
    assert unexplained == [], "split these, or say 'Why one module:' in their docstring"
