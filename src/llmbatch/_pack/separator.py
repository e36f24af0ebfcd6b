"""``separator``: free-text answers between separator lines, accepted only when the count
matches exactly (positional, so all or nothing)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from .._task import Task
from .._types import Completion, Item, Outcome, StructuredMode
from ._base import DATA_RULE, PackFormat
from ._codec import for_all, judge, quote

SEPARATOR = "---NEXT-TEXT---"

TEXTS_HEADER = "Texts ({n}):"


class SeparatorPack(PackFormat):
    """Free-text answers in order, between separator lines. Positional: all or nothing."""

    name = "separator"
    mode: ClassVar[StructuredMode] = "text"
    text_only = True

    def rules(self, task: Task) -> str:
        return (
            f"Texts follow, each as a JSON string, separated by lines {SEPARATOR}. {DATA_RULE}\n"
            f"Answer every text in the same order, one plain-text answer per text, separating "
            f"answers with a line {SEPARATOR}. Write nothing else."
        )

    def user_prompt(self, items: Sequence[Item]) -> str:
        quoted = [quote(item.text) for item in items]
        return TEXTS_HEADER.format(n=len(items)) + "\n" + f"\n{SEPARATOR}\n".join(quoted)

    def parse_pack(self, task: Task, items: Sequence[Item], completion: Completion) -> dict[str, Outcome]:
        if completion.finish_reason == "length":
            return for_all(items, Outcome.invalid("answer truncated (finish_reason length)"))
        content = completion.content.strip()
        parts = [p.strip() for p in re.split(rf"^\s*{re.escape(SEPARATOR)}\s*$", content, flags=re.M)]
        if len(parts) != len(items):
            reason = f"expected {len(items)} answers separated by {SEPARATOR}, got {len(parts)}"
            return for_all(items, Outcome.invalid(reason))
        answers = {item.key: part for item, part in zip(items, parts, strict=True)}
        return {item.key: judge(task, item.key, answers, set(), None) for item in items}
