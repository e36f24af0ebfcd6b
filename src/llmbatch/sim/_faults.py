"""Seeded faults: which requests fail, and how a pack's answer goes wrong.

A request's faults come from ``random.Random`` seeded with a hash of the
configured seed, the request (messages and schemas) and how many times that
exact request was seen before. So they do not depend on arrival order or
concurrency, a rerun with the same seed sees the same faults, and a retried
request draws again (a retry can succeed).

Every draw is made whether or not its fault is enabled, in a fixed order, so
turning one knob does not reshuffle the others: with the same seed, raising
``drop_rate`` drops items from the same requests that failed before, and more.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .config import SimConfig

__all__ = ["ERRORS", "Faults", "corrupt", "draw", "rng_for"]

JSON = Any

ERRORS: dict[int, tuple[str, str, str]] = {
    500: ("The server had an error while processing your request.", "server_error", "server_error"),
    502: ("Bad gateway.", "server_error", "bad_gateway"),
    503: ("The model is overloaded. Please try again later.", "server_error", "overloaded"),
}
"""Injected errors by status: (message, type, code) as OpenAI words them."""


@dataclass(frozen=True, slots=True)
class Faults:
    """What goes wrong with one request. Keys are the pack's item keys."""

    error_status: int | None = None
    hang: bool = False
    dropped: frozenset[str] = frozenset()
    corrupted: frozenset[str] = frozenset()
    misnumbered: tuple[tuple[str, str], ...] = ()
    """(item key, key its answer is written under)."""
    truncate_at: float | None = None
    """Fraction of the content kept, when truncated."""
    malformed: bool = False

    @property
    def names(self) -> list[str]:
        """Fault names for the stats, one per occurrence."""
        out = ["error"] if self.error_status else []
        out += ["timeout"] if self.hang and not self.error_status else []  # an error answers at once
        out += ["drop"] * len(self.dropped) + ["corrupt"] * len(self.corrupted)
        out += ["misnumber"] * len(self.misnumbered)
        out += ["truncate"] if self.truncate_at is not None else []
        return out + (["malformed"] if self.malformed else [])


def rng_for(seed: int, fingerprint: str, occurrence: int) -> random.Random:
    digest = hashlib.sha256(f"sim-v1:{seed}:{fingerprint}:{occurrence}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def draw(config: SimConfig, rng: random.Random, kind: str, keys: Sequence[str]) -> Faults:
    """The faults of one request of ``kind`` (a pack format or ``plain``) with these keys."""
    error_roll, error_pick, hang_roll = rng.random(), rng.random(), rng.random()
    dropped: set[str] = set()
    corrupted: set[str] = set()
    renumbered: list[tuple[int, str, float]] = []
    for position, key in enumerate(keys, start=1):
        drop, bad, renumber, how = rng.random(), rng.random(), rng.random(), rng.random()
        if kind == "plain":  # one answer: nothing to leave out or renumber, but it can be wrong
            if bad < config.corrupt_rate:
                corrupted.add(key)
            continue
        # Constrained decoding (json, tools) keeps every key: only values go wrong.
        if kind in ("numbered", "separator") and drop < config.drop_rate:
            dropped.add(key)
            continue
        if bad < config.corrupt_rate:
            corrupted.add(key)
        if kind == "numbered" and renumber < config.misnumber_rate:
            renumbered.append((position, key, how))
    # A duplicate goes under the key of an item that also answers under its own
    # key, so it is always seen twice: misnumbering never silently swaps answers.
    moved = {key for _, key, _ in renumbered}
    stay = [k for k in keys if k not in dropped and k not in moved]
    misnumbered = [(key, _wrong_key(position, keys, stay, how)) for position, key, how in renumbered]
    truncate_roll, truncate_point, malformed_roll = rng.random(), rng.random(), rng.random()
    # A plain request (one record, as a script sends it, and llmbatch's pack of one) can be
    # cut off or garbled like a pack: the model is the same.
    return Faults(
        error_status=(500, 502, 503)[int(error_pick * 3)] if error_roll < config.error_rate else None,
        hang=hang_roll < config.timeout_rate,
        dropped=frozenset(dropped),
        corrupted=frozenset(corrupted),
        misnumbered=tuple(misnumbered),
        truncate_at=truncate_point if truncate_roll < config.truncate_rate else None,
        malformed=malformed_roll < config.malformed_rate,
    )


def _wrong_key(position: int, keys: Sequence[str], stay: Sequence[str], how: float) -> str:
    """Another item's key (a duplicate), or a key outside the pack (its 1-based position)."""
    if stay and how < 0.5:
        return stay[int(how * 2 * len(stay)) % len(stay)]
    wrong = position
    while str(wrong) in keys:
        wrong += len(keys)
    return str(wrong)


def corrupt(schema: dict[str, Any], value: JSON, is_valid: Callable[[JSON], bool]) -> JSON:
    """A value that breaks ``schema`` the way models do: out of range, off the enum, empty, or
    of the wrong type. ``is_valid`` checks against the whole item schema."""
    if schema == {"type": "string"}:
        return ""  # a free-text answer left empty
    candidate = _corrupt_node(schema, value)
    if not is_valid(candidate):
        return candidate
    for wrong in (["corrupted"], 12345, "corrupted", True, {"corrupted": True}):
        if not is_valid(wrong):
            return wrong
    return value  # a schema that accepts anything cannot be broken


def _corrupt_node(node: dict[str, Any], value: JSON) -> JSON:
    if "enum" in node:
        bad = "unknown"
        while bad in node["enum"]:
            bad += "_"
        return bad
    kind = node.get("type")
    kinds = {kind} if isinstance(kind, str) else set(kind or [])
    if kinds & {"number", "integer"} and isinstance(value, int | float):
        if "maximum" in node:
            return node["maximum"] + 1
        if "minimum" in node:
            return node["minimum"] - 1
    props = node.get("properties")
    if isinstance(value, dict) and isinstance(props, dict) and props:
        # Break the first property whose corruption is detectable by its own schema.
        for name, sub in props.items():
            if isinstance(sub, dict) and name in value and ("enum" in sub or "maximum" in sub):
                return {**value, name: _corrupt_node(sub, value[name])}
        first = next(iter(props))
        return {**value, first: ["corrupted"]}
    if kinds == {"string"}:
        return ""
    return value
