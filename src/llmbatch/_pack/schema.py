"""The answer schemas a request carries: one item's, a whole pack's, a plain request's."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from .._task import Task

SCHEMA_LINE = "Answer schema: "


def lone_field(schema: Mapping[str, Any]) -> str | None:
    """The one field of an object schema that has exactly one required field and nothing
    else, or None: such an answer is packed as the field's value alone."""
    props = schema.get("properties")
    if (
        schema.get("type") != "object"
        or not isinstance(props, Mapping)
        or len(props) != 1
        or schema.get("required") != list(props)
        or schema.get("additionalProperties") is not False
        or not set(schema) <= _LONE_FIELD_KEYWORDS
    ):
        return None
    field = next(iter(props))
    return field if isinstance(props[field], Mapping) else None


_LONE_FIELD_KEYWORDS = frozenset(
    {"type", "properties", "required", "additionalProperties", "title", "description"}
)


def answer_schema(task: Task) -> dict[str, Any]:
    """What one item's answer looks like inside a pack: the task's schema, or the schema of
    its lone field (``lone_field``)."""
    schema = task.item_schema
    field = lone_field(schema)
    if field is None:
        return schema
    value: dict[str, Any] = schema["properties"][field]
    return value


def pack_schema(task: Task, keys: Sequence[str]) -> dict[str, Any]:
    """The strict schema of a whole packed answer: exactly these keys, each an item answer.

    The item schema is defined once under ``$defs`` and referenced per key, so
    the schema grows by a few tokens per item rather than by a whole schema.
    The per-key entries are what holds a constrained decoder to exactly these
    keys, none skipped, none renumbered (they cost ~24 tokens an item).
    """
    ref = {"$ref": "#/$defs/answer"}
    return {
        "type": "object",
        "properties": {key: ref for key in keys},
        "required": list(keys),
        "additionalProperties": False,
        "$defs": {"answer": answer_schema(task)},
    }


def single_schema(task: Task) -> dict[str, Any]:
    """The response schema of a plain one-record request: the task's own schema, wrapped in
    an ``answer`` field when its root is not an object (strict modes need an object root)."""
    schema = task.item_schema
    if schema.get("type") == "object":
        return schema
    return {
        "type": "object",
        "properties": {SINGLE_FIELD: schema},
        "required": [SINGLE_FIELD],
        "additionalProperties": False,
    }


SINGLE_FIELD = "answer"


@functools.cache
def place_keys(n: int) -> tuple[str, ...]:
    return tuple(f"k{place}" for place in range(1, n + 1))
