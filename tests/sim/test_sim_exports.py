from __future__ import annotations

import ast
from pathlib import Path

import llmbatch.sim
from llmbatch.sim import oracle


def test_all_is_honest() -> None:
    exported = {name for name in vars(llmbatch.sim) if not name.startswith("_")}
    modules = {"cli", "config", "engine", "oracle", "server", "annotations"}
    assert set(llmbatch.sim.__all__) == exported - modules
    assert llmbatch.sim.oracle_answer is oracle.answer


def test_sim_imports_only_leaf_modules_of_llmbatch() -> None:
    # The simulator checks the client; sharing its packer or providers would hide bugs.
    allowed = {"llmbatch._pack.tokens", "llmbatch._task"}
    for path in Path(llmbatch.sim.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("llmbatch"):
                    assert node.module in allowed, (path.name, node.module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("llmbatch"), (path.name, alias.name)
