"""``numbered``: ``key: answer`` lines, for providers without structured output."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from .._task import Task
from .._types import Completion, Item, Outcome, StructuredMode
from ._base import DATA_RULE, KEYED_INPUT, PackFormat
from ._codec import judge, loads_answer
from .schema import lone_field

_LINE = re.compile(r"^\s*[\[(#]?\s*([A-Za-z]?\d+)\s*[\])]?\s*[:=.)-]\s?(.*)$")


class NumberedPack(PackFormat):
    name = "numbered"
    mode: ClassVar[StructuredMode] = "text"
    schema_in_prompt = True

    def rules(self, task: Task) -> str:
        kind = (
            "the answer as a JSON string on one line"
            if task.is_text
            else "the answer as compact JSON on one line, matching the answer schema below"
        )
        return (
            f"{KEYED_INPUT} {DATA_RULE}\n"
            f"Answer with exactly one line per item: the item key, a colon, a space, then {kind}. "
            "Use each item's own key. Write nothing else."
        )

    def parse_pack(self, task: Task, items: Sequence[Item], completion: Completion) -> dict[str, Outcome]:
        # Split on "\n" only: splitlines() would also cut a JSON string answer
        # at a raw U+2028, U+0085 or form feed inside it.
        lines = completion.content.strip().split("\n")
        truncated = completion.finish_reason == "length"
        if truncated and lines:
            lines.pop()  # the last line may have been cut mid-answer
        answers: dict[str, Any] = {}
        repeated: set[str] = set()
        for line in lines:
            match = _LINE.match(line)
            if match is None:
                continue
            key, raw = match.group(1), match.group(2).strip()
            if key in answers:
                repeated.add(key)
            answers[key] = loads_answer(task, raw)
        field = lone_field(task.item_schema)
        outcomes = {item.key: judge(task, item.key, answers, repeated, field) for item in items}
        if truncated:
            cut = Outcome.invalid("answer truncated (finish_reason length)")
            outcomes = {k: (o if o.status == "ok" else cut) for k, o in outcomes.items()}
        return outcomes
