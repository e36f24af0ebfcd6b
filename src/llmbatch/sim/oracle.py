"""The oracle: the one "right answer" the simulated model gives for an item.

``answer(item_schema, instructions, text)`` is a pure function, so a test can
recompute what every item should have received and tell a correct, complete,
well-aligned run from one that lost or swapped answers. The answers look like a
model followed the instructions (Spanish-ish translations, sentiment from a
lexicon, fields pulled out by regex) but only keywords of the instructions are
read. Every answer validates against the schema it was made for (JSON Schema
Draft 2020-12, for the shapes tasks use: objects, strings, numbers, integers,
booleans, arrays, enums, consts and unions with null).

    >>> answer({"type": "string"}, "Translate to Spanish.", "Good morning, my friend.")
    'Bueno mañana, mi amigo.'
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

import jsonschema

from . import _extract
from ._lexicon import NEGATIVE, POSITIVE, SPANISH

__all__ = ["answer", "sentiment", "text_answer"]

JSON = Any
EMPTY = "(empty)"
"""The answer for a text with no words: answers are never empty."""

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_MAX_DEPTH = 8
_TEXT_FIELDS = frozenset(
    {"answer", "output", "reply", "response", "result", "summary", "text", "translation"}
)


def answer(item_schema: Mapping[str, Any], instructions: str, text: str) -> JSON:
    """The deterministic answer to ``instructions`` for ``text`` under ``item_schema``.

    >>> answer({"type": "object", "properties": {"label": {"enum": ["positive", "negative"]}},
    ...         "required": ["label"]}, "Classify.", "I love it")
    {'label': 'positive'}
    """
    return _Oracle(dict(item_schema), instructions.lower(), text).value(dict(item_schema), "", 0)


def text_answer(instructions: str, text: str) -> str:
    """A free-text answer on one line: a translation, a summary, or the words reversed."""
    flat = " ".join(text.split())
    lowered = instructions.lower()
    if "translat" in lowered:
        result = _translate(flat)
    elif "summar" in lowered:
        first = _SENTENCE_END.split(flat, maxsplit=1)[0]
        result = " ".join(first.split()[:12])
    else:
        result = " ".join(reversed(flat.split()))
    return result if result.strip() else EMPTY


def sentiment(text: str) -> tuple[str, int]:
    """``("positive" | "negative" | "neutral", strength)`` by counting lexicon words."""
    words = [w.lower() for w in _WORD.findall(text)]
    score = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
    label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
    return label, abs(score)


class _Oracle:
    """One answer in the making; ``root`` resolves local ``$ref``s."""

    __slots__ = ("instructions", "root", "text")

    def __init__(self, root: dict[str, Any], instructions: str, text: str) -> None:
        self.root = root
        self.instructions = instructions
        self.text = text

    def value(self, node: Any, name: str, depth: int) -> JSON:
        node = self._resolve(node)
        if not isinstance(node, dict) or depth > _MAX_DEPTH:
            return None
        if "const" in node:
            return node["const"]
        if "enum" in node:
            return self._enum(node, name)
        branches = node.get("anyOf") or node.get("oneOf")
        if isinstance(branches, list) and branches:
            return self._union(node, branches, name, depth)
        if isinstance(node.get("allOf"), list):
            merged = {k: v for k, v in node.items() if k != "allOf"}
            for part in node["allOf"]:
                merged.update(self._resolve(part))
            return self.value(merged, name, depth + 1)
        types = _types(node)
        nullable = "null" in types
        if name in _extract.EXTRACTORS and types & {"string", "number", "integer"}:
            extracted = self._extract(name, types)
            if extracted is not None or nullable:
                return extracted
        for kind in ("object", "array", "string", "number", "integer", "boolean", "null"):
            if kind in types:
                return self._make(kind, node, name, depth)
        return self._make("string", node, name, depth)

    # -- by kind -----------------------------------------------------------------

    def _make(self, kind: str, node: dict[str, Any], name: str, depth: int) -> JSON:
        if kind == "object":
            props = node.get("properties") or {}
            out = {key: self.value(sub, key, depth + 1) for key, sub in props.items()}
            for key in node.get("required", []):
                out.setdefault(key, None)
            return out
        if kind == "array":
            return self._array(node, name, depth)
        if kind == "string":
            return self._string(node, name)
        if kind in ("number", "integer"):
            return self._number(node, name, integer=kind == "integer")
        if kind == "boolean":
            return _hash(self.text, name) % 2 == 0
        return None

    def _enum(self, node: dict[str, Any], name: str) -> JSON:
        values = list(node["enum"])
        if not values:
            return None
        if "positive" in values or "negative" in values:
            label, _ = sentiment(self.text)
            if label in values:
                return label
            return "neutral" if "neutral" in values else values[0]
        # A value named in the text wins (an "intent" of "refund" for a refund
        # request); otherwise any value, chosen by hash so it is stable.
        words = {w.lower() for w in _WORD.findall(self.text)}
        for value in values:
            if isinstance(value, str) and value.lower().replace("_", " ") in words:
                return value
        return values[_hash(self.text, name) % len(values)]

    def _union(self, node: dict[str, Any], branches: list[Any], name: str, depth: int) -> JSON:
        resolved = [self._resolve(b) for b in branches]
        nullable = any(isinstance(b, dict) and _types(b) == {"null"} for b in resolved)
        others = [b for b in resolved if not (isinstance(b, dict) and _types(b) == {"null"})]
        if name in _extract.EXTRACTORS and nullable:
            kinds = set().union(*(_types(b) for b in others if isinstance(b, dict)))
            if kinds & {"string", "number", "integer"}:
                return self._extract(name, kinds)
        for branch in others:
            candidate = self.value(branch, name, depth + 1)
            if _valid(node, candidate, self.root):
                return candidate
        return None

    def _extract(self, name: str, types: set[str]) -> JSON:
        found = _extract.EXTRACTORS[name](self.text)
        if found is None:
            return None
        if isinstance(found, float):
            if "number" in types:
                return int(found) if found.is_integer() else found
            if "integer" in types:
                return round(found)
            return f"{found:g}"
        return found if "string" in types else None

    def _string(self, node: dict[str, Any], name: str) -> str:
        fmt = node.get("format")
        if fmt in ("date", "email"):
            found = _extract.EXTRACTORS[fmt](self.text)
            if isinstance(found, str):
                return found
            return "2026-01-01" if fmt == "date" else "someone@example.com"
        if not name or name in _TEXT_FIELDS:
            # The item's whole answer, or a property that holds it ("translation").
            value = text_answer(f"{self.instructions} {name}", self.text)
        else:
            words = _WORD.findall(self.text)
            value = " ".join(words[:5]).lower() or EMPTY
        low = int(node.get("minLength", 0))
        high = node.get("maxLength")
        if len(value) < low:
            value += "x" * (low - len(value))
        if isinstance(high, int) and len(value) > high:
            value = value[:high]
        return value

    def _number(self, node: dict[str, Any], name: str, *, integer: bool) -> int | float:
        low, high = _bounds(node, integer=integer)
        if name == "confidence":
            _, strength = sentiment(self.text)
            fraction = 0.6 + 0.35 * (1 - 1 / (1 + strength))  # 0.6 .. 0.95
        else:
            fraction = (_hash(self.text, name) % 1000) / 999
        value = low + (high - low) * fraction
        if integer:
            return max(math.ceil(low), min(math.floor(high), round(value)))
        return max(low, min(high, round(value, 2)))

    def _array(self, node: dict[str, Any], name: str, depth: int) -> list[JSON]:
        low = int(node.get("minItems", 0))
        high = node.get("maxItems")
        count = max(low, 2)
        if isinstance(high, int):
            count = min(count, high)
        items = node.get("items") if isinstance(node.get("items"), dict) else {}
        words = _WORD.findall(self.text) or [EMPTY]
        out: list[JSON] = []
        for i in range(count):
            # Each element answers a rotation of the text, so elements differ.
            sub = _Oracle(self.root, self.instructions, " ".join(words[i:] + words[:i]))
            out.append(sub.value(items, name, depth + 1))
        if node.get("uniqueItems"):
            out = _dedupe(out)
        return out

    def _resolve(self, node: Any) -> Any:
        for _ in range(_MAX_DEPTH):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                return node
            target: Any = self.root
            for part in node["$ref"].removeprefix("#/").split("/"):
                if part and isinstance(target, dict):
                    target = target.get(part, {})
            node = {**{k: v for k, v in node.items() if k != "$ref"}, **target}
        return node


def _types(node: Mapping[str, Any]) -> set[str]:
    kind = node.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    if "properties" in node:
        return {"object"}
    if "items" in node:
        return {"array"}
    return {"string"}


def _bounds(node: Mapping[str, Any], *, integer: bool) -> tuple[float, float]:
    step = 1 if integer else 0.01
    low = node.get("minimum")
    high = node.get("maximum")
    if "exclusiveMinimum" in node:
        low = node["exclusiveMinimum"] + step
    if "exclusiveMaximum" in node:
        high = node["exclusiveMaximum"] - step
    if low is None:
        low = 0 if high is None or high >= 0 else high - 100
    high = max(low, (low + 100) if high is None else high)
    return float(low), float(high)


def _dedupe(values: list[JSON]) -> list[JSON]:
    out: list[JSON] = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


def _valid(node: Mapping[str, Any], value: JSON, root: Mapping[str, Any]) -> bool:
    schema = dict(node)
    for key in ("$defs", "definitions"):  # so that local $refs inside ``node`` resolve
        if key in root:
            schema.setdefault(key, root[key])
    return bool(jsonschema.Draft202012Validator(schema).is_valid(value))


def _hash(text: str, salt: str) -> int:
    """A stable integer from text (``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(f"{salt}\x00{text}".encode()).digest()[:8], "big")


def _translate(text: str) -> str:
    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        spanish = SPANISH.get(word.lower())
        if spanish is None:
            return word
        return spanish[0].upper() + spanish[1:] if word[0].isupper() else spanish

    return _WORD.sub(swap, text)
