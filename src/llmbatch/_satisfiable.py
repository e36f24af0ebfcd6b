"""Output schemas that no answer can match, found before anything is sent.

A schema can be valid JSON Schema and still accept nothing: an empty ``enum``,
``minimum`` above ``maximum``, a ``const`` of the wrong type. Every answer
would then fail validation, be asked again and be paid for again, and the run
would end with every record failed. ``unsatisfiable`` names each such place by
its path in the task::

    >>> unsatisfiable({"type": "object", "properties": {"n": {"minimum": 5, "maximum": 1}}})
    ['output.properties.n: no number is >= 5 and <= 1: fix the bounds']

It reads the schema as the user wrote it, before ``strict_schema`` rewrites it:
strict mode lists every property in ``required``, so a required name that is
not a property would otherwise vanish without a word.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

import jsonschema

__all__ = ["unsatisfiable"]

_TYPES = frozenset({"array", "boolean", "integer", "null", "number", "object", "string"})
_CHECKER = jsonschema.Draft202012Validator.TYPE_CHECKER

# Sub-schemas by how they hang off their parent: a map of names, a list, or one schema.
_NAMED = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_LISTED = ("prefixItems", "anyOf", "oneOf", "allOf")
_SINGLE = ("items", "additionalProperties", "contains", "propertyNames", "unevaluatedItems")
_SIZES = (
    ("minLength", "maxLength"),
    ("minItems", "maxItems"),
    ("minProperties", "maxProperties"),
    ("minContains", "maxContains"),
)


def unsatisfiable(schema: Mapping[str, Any], where: str = "output") -> list[str]:
    """Every place of ``schema`` that no value can match, as ``path: reason`` lines.

    Expects a schema that ``check_schema`` accepts; malformed keywords are skipped,
    not reported (that check says what is wrong with them).
    """
    problems: list[str] = []
    _walk(schema, where, problems)
    return problems


def _walk(node: Any, where: str, problems: list[str]) -> None:
    if not isinstance(node, Mapping):
        return
    problems.extend(f"{where}: {reason}" for reason in _reasons(node))
    for key in _NAMED:
        children = node.get(key)
        if isinstance(children, Mapping):
            for name, child in children.items():
                _walk(child, f"{where}.{key}.{name}", problems)
    for key in _LISTED:
        children = node.get(key)
        if isinstance(children, list):
            for number, child in enumerate(children):
                _walk(child, f"{where}.{key}[{number}]", problems)
    for key in _SINGLE:
        child = node.get(key)
        if isinstance(child, list):  # ``items`` as a list: draft 2019 and older
            for number, item in enumerate(child):
                _walk(item, f"{where}.{key}[{number}]", problems)
        else:
            _walk(child, f"{where}.{key}", problems)


def _reasons(node: Mapping[str, Any]) -> list[str]:
    reasons: list[str] = []
    types = _declared_types(node)
    enum = node.get("enum")
    if isinstance(enum, list):
        if not enum:
            reasons.append("enum is empty: list the values an answer may take")
        elif types:
            reasons.extend(
                f"enum value {value!r} is not {_kind(types)}" for value in enum if not _is_any(value, types)
            )
    if "const" in node and types and not _is_any(node["const"], types):
        reasons.append(f"const {node['const']!r} is not {_kind(types)}")
    bounds = _number_bounds(node, types)
    if bounds is not None:
        reasons.append(bounds)
    for low_key, high_key in _SIZES:
        low: Any = node.get(low_key)
        high: Any = node.get(high_key)
        if _is_whole(low) and _is_whole(high) and low > high:
            reasons.append(f"{low_key} {low} is above {high_key} {high}")
    required, properties = node.get("required"), node.get("properties")
    if isinstance(required, list) and isinstance(properties, Mapping):
        missing = [name for name in required if isinstance(name, str) and name not in properties]
        if missing:
            names = ", ".join(f"{name!r}{_did_you_mean(name, properties)}" for name in missing)
            one = len(missing) == 1
            reasons.append(
                f"required lists {names}, which {'is' if one else 'are'} not in properties: "
                f"add {'it' if one else 'them'} there or drop {'it' if one else 'them'} from required"
            )
    return reasons


def _did_you_mean(name: str, known: Mapping[str, Any]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _declared_types(node: Mapping[str, Any]) -> list[str] | None:
    """The node's ``type`` as a list, or None when it has none (or one this check does not know)."""
    kind = node.get("type")
    kinds = [kind] if isinstance(kind, str) else kind
    if not isinstance(kinds, list) or not kinds or not all(k in _TYPES for k in kinds):
        return None
    return kinds


def _is_any(value: Any, types: list[str]) -> bool:
    return any(_CHECKER.is_type(value, kind) for kind in types)


def _kind(types: list[str]) -> str:
    return " or ".join(f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}" for kind in types)


def _is_number(value: Any) -> bool:
    # Finite only: an infinite bound bounds nothing, and nan compares false with everything.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number_bounds(node: Mapping[str, Any], types: list[str] | None) -> str | None:
    """Why no number fits the node's bounds, or None when some does (or there are not two)."""
    lows = [
        (node[k], k == "exclusiveMinimum") for k in ("minimum", "exclusiveMinimum") if _is_number(node.get(k))
    ]
    highs = [
        (node[k], k == "exclusiveMaximum") for k in ("maximum", "exclusiveMaximum") if _is_number(node.get(k))
    ]
    if not lows or not highs:
        return None
    # The tightest bound of each side; at the same value an exclusive bound is the tighter.
    low, low_open = max(lows, key=lambda bound: (bound[0], bound[1]))
    high, high_open = min(highs, key=lambda bound: (bound[0], not bound[1]))
    whole = types is not None and "integer" in types and "number" not in types
    if whole:
        # Integers only: 1.5 < n < 2 holds no integer although it holds numbers.
        first = math.floor(low) + 1 if low_open else math.ceil(low)
        last = math.ceil(high) - 1 if high_open else math.floor(high)
        empty = first > last
    else:
        empty = low > high or (low == high and (low_open or high_open))
    if not empty:
        return None
    return (
        f"no {'integer' if whole else 'number'} is {'>' if low_open else '>='} {low} "
        f"and {'<' if high_open else '<='} {high}: fix the bounds"
    )
