"""``tools``: the JSON pack's schema as the parameters of one forced function call."""

from __future__ import annotations

from typing import ClassVar

from .._task import Task
from .._types import StructuredMode
from ._base import DATA_RULE, KEYED_INPUT
from .json import JsonPack


class ToolsPack(JsonPack):
    """The JSON pack delivered as the arguments of one forced function call."""

    name = "tools"
    mode: ClassVar[StructuredMode] = "tool"

    def rules(self, task: Task) -> str:
        return (
            f"{KEYED_INPUT} {DATA_RULE}\n"
            "Call the function `answers` once, with one argument per item key, "
            "whose value is that item's answer."
        )
