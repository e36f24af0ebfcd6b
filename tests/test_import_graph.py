"""No import cycles inside ``src/llmbatch``, found by reading the source, not by importing it.

Every ``import`` counts, the ones inside functions too (a lazy import hides a cycle from
the interpreter, not from the reader), except those under ``if TYPE_CHECKING:``, which
never run. An edge goes to the module named, not to its parent packages: importing
``llmbatch._pack.tokens`` runs ``llmbatch._pack`` first, but that is the package's own
business, not a dependency of the importer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "llmbatch"


def _module_name(path: Path, src: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(src).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module name → the modules of the same package (``root``) that it imports."""
    files = {_module_name(path, root.parent): path for path in root.rglob("*.py")}
    modules = {name for name, _ in files}
    graph: dict[str, set[str]] = {}
    for (name, is_package), path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        package = name if is_package else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(tree):
            if _type_checking_only(node, parents):
                continue
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                # ``from pkg import sub`` imports the submodule; ``from pkg import name`` the package.
                subs = {f"{target}.{alias.name}" for alias in node.names} & modules
                edges.update(subs)
                if target in modules and len(subs) < len(node.names):
                    edges.add(target)
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_in_the_package() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" ↔ ".join(group) for group in found)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"a.py": "from . import b\n", "b.py": "from .a import x\n"}, [["pkg.a", "pkg.b"]]),
        # A lazy import inside a function is still a cycle.
        ({"a.py": "def f():\n    from .b import y\n", "b.py": "from .a import x\n"}, [["pkg.a", "pkg.b"]]),
        # Type-only imports never run.
        (
            {
                "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import y\n",
                "b.py": "from .a import x\n",
            },
            [],
        ),
        # A package importing its submodules, which import each other one way only: no cycle.
        ({"__init__.py": "from .a import x\n", "a.py": "from .b import y\n", "b.py": "z = 1\n"}, []),
        # A submodule importing names back from its package's __init__ is a cycle.
        ({"__init__.py": "from .a import x\n", "a.py": "from . import z\n"}, [["pkg", "pkg.a"]]),
        # Three modules round a loop, via a parent-relative import.
        (
            {
                "sub/__init__.py": "",
                "sub/c.py": "from ..a import x\n",
                "a.py": "from .b import y\n",
                "b.py": "from .sub.c import z\n",
            },
            [["pkg.a", "pkg.b", "pkg.sub.c"]],
        ),
    ],
)
def test_the_scan_finds_cycles(tmp_path: Path, files: dict[str, str], expected: list[list[str]]) -> None:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    assert cycles(import_graph(root)) == expected
