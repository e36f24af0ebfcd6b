"""Text in and answers out, shared by every format: item text quoted onto one line, model
output read as JSON (a key given twice is seen, NaN is not a number), and each answer judged
against the task's schema into an ``Outcome``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .._task import Task
from .._types import Item, Outcome


class Pairs(list[tuple[str, Any]]):
    """Object pairs kept in order so that a key given twice is seen, not overwritten."""

    def unique(self) -> tuple[dict[str, Any], set[str]]:
        seen: dict[str, Any] = {}
        repeated: set[str] = set()
        for key, value in self:
            if key in seen:
                repeated.add(key)
            seen[key] = value
        return seen, repeated


def plain(value: Any) -> Any:
    """Turn nested ``Pairs`` (from the pairs hook) back into dicts."""
    if isinstance(value, Pairs):
        return {k: plain(v) for k, v in value}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def judge(task: Task, key: str, answers: dict[str, Any], repeated: set[str], field: str | None) -> Outcome:
    """The outcome of the item under ``key``; ``field`` wraps a packed lone-field answer back."""
    if key in repeated:
        return Outcome.invalid("answer given twice for this item")
    if key not in answers:
        return Outcome.missing()
    answer = plain(answers[key])
    return judged(task, answer if field is None else {field: answer})


def judged(task: Task, answer: Any) -> Outcome:
    if task.is_text and isinstance(answer, str) and not answer.strip():
        return Outcome.invalid("empty answer")
    reason = task.validate_answer(answer)
    return Outcome.invalid(reason) if reason else Outcome.ok(answer)


def loads(text: str) -> Any:
    # NaN and Infinity are not JSON: read as strings, they fail a number schema
    # instead of reaching the store and the output file as invalid JSON.
    return json.loads(text, object_pairs_hook=Pairs, parse_constant=str)


def loads_answer(task: Task, raw: str) -> Any:
    try:
        value = loads(raw)
    except json.JSONDecodeError:
        # A model without constrained decoding often writes bare text; the
        # schema check then decides whether a bare string is acceptable.
        return raw
    # A bare text answer that happens to parse as JSON (``42``, ``true``) is
    # still the text the model wrote.
    return raw if task.is_text and not isinstance(value, str) else value


# Line breaks other than "\n" that json.dumps(ensure_ascii=False) leaves raw: escaped,
# so that every item stays on its one line for whoever splits the prompt into lines.
_RAW_BREAKS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def quote(text: str) -> str:
    """The item text as a one-line JSON string (non-ASCII kept readable)."""
    return json.dumps(text, ensure_ascii=False).translate(_RAW_BREAKS)


def strip_fences(content: str) -> str:
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


def for_all(items: Sequence[Item], outcome: Outcome) -> dict[str, Outcome]:
    return {item.key: outcome for item in items}
