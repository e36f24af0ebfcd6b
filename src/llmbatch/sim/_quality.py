"""The quality model: packed answers get worse with the pack's size and an item's position.

Research on packing many items into one prompt (see ``docs`` and FACTS) finds that
accuracy falls as the pack grows, that items in the middle of a pack suffer most
("lost in the middle"), and that packed free-text answers get shorter. This module
makes the simulated model do the same, by a formula, reproducibly::

    factor(b)      = (b − 1) / (PACK_REF − 1)            0 for b = 1, 1 for b = 50
    middle(i, b)   = 4·x·(1 − x),  x = i / (b − 1)        0 at both ends, 1 in the middle
    P(wrong)       = min(1, decay · factor(b) · (1 + middle(i, b)))
    kept words     = max(1, ceil(n · (1 − shortening · factor(b))))     free-text answers

``b`` is the number of items in the request and ``i`` the item's 0-based position
in it. With ``decay = 0.03`` an item at either end of a 50-item pack is wrong 3% of
the time and one in the middle 6% (4.9% on average over the pack); pack size 1 is
never degraded. The draw is seeded by (seed, pack size, position, item text), so
the same item at the same place in a pack of the same size always gets the same
answer (a model at temperature 0), while moving it elsewhere draws again — which
is what position shuffling and permutation voting rely on.

A wrong answer is still valid against the item's schema — the kind of error
structured output cannot catch: another enum value, a flipped boolean, a number
moved well outside the agreement tolerance but inside its bounds, or a text with
words dropped and swapped. For an object one property goes wrong; for an array
one element.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from typing import Any

__all__ = ["PACK_REF", "degrade", "middle", "pack_factor", "quality_rng", "shorten", "wrong_probability"]

JSON = Any

PACK_REF = 50
"""The pack size at which ``decay`` is the error rate of an item at either end of the pack."""

_NUMBER_SHIFT = (0.15, 0.4)
"""How far a wrong number moves, as a share of its range (or of its size when unbounded)."""


def pack_factor(size: int) -> float:
    """0 for a single item, 1 at ``PACK_REF`` items, linear in between (and beyond)."""
    return max(0, size - 1) / (PACK_REF - 1)


def middle(position: int, size: int) -> float:
    """The "lost in the middle" bump: 0 at the first and last position, 1 in the middle."""
    if size < 3:
        return 0.0
    x = position / (size - 1)
    return 4 * x * (1 - x)


def wrong_probability(decay: float, size: int, position: int) -> float:
    """P(the answer of the item at ``position`` in a pack of ``size`` is wrong)."""
    return min(1.0, decay * pack_factor(size) * (1 + middle(position, size)))


def quality_rng(seed: int, size: int, position: int, text: str) -> random.Random:
    digest = hashlib.sha256(f"sim-quality-v1:{seed}:{size}:{position}:{text}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def shorten(text: str, shortening: float, size: int) -> str:
    """``text`` with only its first ``1 − shortening · factor(size)`` share of words (at least one)."""
    keep = 1 - shortening * pack_factor(size)
    if keep >= 1:
        return text
    words = text.split()
    if len(words) <= 1:
        return text
    kept = max(1, math.ceil(len(words) * max(0.0, keep)))
    return text if kept >= len(words) else " ".join(words[:kept])


def degrade(
    schema: dict[str, Any], value: JSON, rng: random.Random, is_valid: Callable[[JSON], bool]
) -> JSON:
    """A wrong answer that ``is_valid`` still accepts; ``value`` itself when none can be made."""
    candidate = _perturb(schema, value, rng)
    if candidate is _NONE or candidate == value or not is_valid(candidate):
        return value
    return candidate


_NONE: Any = object()
"""No wrong value can be made here (a const, a null, an empty array)."""


def _perturb(node: Any, value: JSON, rng: random.Random) -> JSON:
    if not isinstance(node, dict) or value is None:
        return _NONE
    if "const" in node:
        return _NONE
    if "enum" in node:
        others = [v for v in node["enum"] if v != value and v is not None]
        return rng.choice(others) if others else _NONE
    branches = node.get("anyOf") or node.get("oneOf")
    if isinstance(branches, list):
        for branch in branches:
            found = _perturb(branch, value, rng)
            if found is not _NONE:
                return found
        return _NONE
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return _number(node, value, rng)
    if isinstance(value, str):
        return _text(value, rng)
    if isinstance(value, dict):
        props = node.get("properties") or {}
        names = [name for name in props if name in value]
        rng.shuffle(names)
        for name in names:
            found = _perturb(props[name], value[name], rng)
            if found is not _NONE:
                return {**value, name: found}
        return _NONE
    if isinstance(value, list) and value:
        index = rng.randrange(len(value))
        found = _perturb(node.get("items"), value[index], rng)
        return _NONE if found is _NONE else [*value[:index], found, *value[index + 1 :]]
    return _NONE


def _number(node: dict[str, Any], value: float, rng: random.Random) -> JSON:
    """Moved by 15–40% of the range, towards the side with more room, clamped to the bounds."""
    integer = node.get("type") == "integer" or (
        isinstance(node.get("type"), list) and "integer" in node["type"] and "number" not in node["type"]
    )
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    span = (high - low) if low is not None and high is not None else max(1.0, abs(value))
    shift = rng.uniform(*_NUMBER_SHIFT) * span
    up_room = math.inf if high is None else high - value
    down_room = math.inf if low is None else value - low
    moved = value + shift if up_room >= down_room else value - shift
    if high is not None:
        moved = min(moved, high)
    if low is not None:
        moved = max(moved, low)
    moved = round(moved) if integer else round(moved, 2)
    if moved == value:
        return _NONE
    return int(moved) if integer else moved


def _text(value: str, rng: random.Random) -> JSON:
    """Words dropped (a third) and two swapped; a single word loses or doubles a letter."""
    words = value.split()
    if len(words) >= 2:
        drop = set(rng.sample(range(len(words)), max(1, len(words) // 3))) if len(words) > 2 else set()
        kept = [w for i, w in enumerate(words) if i not in drop] or words[:1]
        if len(kept) >= 2:
            i = rng.randrange(len(kept) - 1)
            kept[i], kept[i + 1] = kept[i + 1], kept[i]
        altered = " ".join(kept)
        return altered if altered != value else _NONE
    if len(value) >= 2:
        i = rng.randrange(len(value))
        return value[:i] + value[i + 1 :]
    return value + value if value else _NONE
