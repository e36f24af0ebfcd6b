"""The answer budget: how many tokens one item's answer may take, and so a pack's ``max_tokens``.

``max_tokens`` is not free: OpenAI charges it against the TPM limit when a
request is admitted, so a budget twice the answers halves a TPM-bound job's
throughput. Two sources bound it, and the tighter wins:

- **the schema**: enums, booleans, bounded integers and strings with a
  ``maxLength`` have a longest answer that can be worked out (``schema_bound``);
  a free string or an unbounded array has none;
- **the answers seen so far** (``AnswerBudget``): a high quantile of the tokens
  per answered item, plus a margin, once enough answers are in.

Truncation is still handled where it always was (split the pack; a lone item
retries with a boosted budget), so a budget that turns out short costs a retry,
never an answer.

    >>> schema_bound({"type": "string", "enum": ["yes", "no"]})
    2
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from typing import Any

from .._pack import PER_ITEM_OVERHEAD, answer_schema
from .._pack.tokens import count_tokens
from .._task import Task

__all__ = ["AnswerBudget", "schema_bound"]

FLOAT_DIGITS = 17
"""Significant digits of a double as printed in full."""

_STRING_TOKENS_PER_CHAR = 1.0
"""Worst case for a bounded string: one token per character (odd text tokenizes badly)."""


def schema_bound(schema: Mapping[str, Any], defs: Mapping[str, Any] | None = None) -> int | None:
    """Most tokens an answer valid against ``schema`` can take, or None when nothing bounds it."""
    defs = defs if defs is not None else schema.get("$defs", {})
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(ref.removeprefix("#/$defs/"))
        return None if not isinstance(target, Mapping) else schema_bound(target, defs)
    if "const" in schema:
        return _tokens_of(schema["const"])
    if "enum" in schema:
        values = schema["enum"]
        return max((_tokens_of(v) for v in values), default=1)
    for union in ("anyOf", "oneOf"):
        if union in schema:
            bounds = [schema_bound(option, defs) for option in schema[union]]
            return None if any(b is None for b in bounds) else max(b for b in bounds if b is not None)
    kind = schema.get("type")
    if isinstance(kind, list):
        bounds = [schema_bound({**schema, "type": one}, defs) for one in kind]
        return None if any(b is None for b in bounds) else max(b for b in bounds if b is not None)
    if kind == "null":
        return 1
    if kind == "boolean":
        return 1
    if kind == "integer":
        return _integer_bound(schema)
    if kind == "number":
        # A float's digits are not bounded by its range: small models write 0.9999999999999999
        # (17 significant digits), and some tokenizers spend a token on each digit. What the
        # answers really use takes over once they are seen (``AnswerBudget``).
        whole = _integer_bound(schema)
        return None if whole is None else whole + FLOAT_DIGITS + 1
    if kind == "string":
        longest = schema.get("maxLength")
        if not isinstance(longest, int):
            return None
        return 2 + math.ceil(longest * _STRING_TOKENS_PER_CHAR)  # the quotes, the characters
    if kind == "array":
        most = schema.get("maxItems")
        items = schema.get("items")
        if not isinstance(most, int) or not isinstance(items, Mapping):
            return None
        each = schema_bound(items, defs)
        return None if each is None else 2 + most * (each + 1)
    if kind == "object" or "properties" in schema:
        total = 2  # the braces
        for name, sub in (schema.get("properties") or {}).items():
            value = schema_bound(sub, defs) if isinstance(sub, Mapping) else None
            if value is None:
                return None
            total += count_tokens(json.dumps(name)) + 1 + value + 1  # "name": value,
        return total
    return None


def _integer_bound(schema: Mapping[str, Any]) -> int | None:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return None
    return max(_tokens_of(int(low)), _tokens_of(int(high)))


def _tokens_of(value: Any) -> int:
    # Digits tokenize in runs of up to three in most BPE vocabularies; count_tokens, which
    # counts word pieces of up to eight characters, would undercount long numbers.
    text = json.dumps(value, ensure_ascii=False)
    digits = sum(ch.isdigit() for ch in text)
    return max(1, count_tokens(text), math.ceil(digits / 3) + (text[0] == "-"))


class AnswerBudget:
    """Tokens per item's answer (with its share of the pack's punctuation), learnt from the
    answers seen and bounded by the schema.

    >>> budget = AnswerBudget(default=60, bound=12)
    >>> budget.per_item()
    12
    """

    __slots__ = ("_cached", "_keep", "_seen", "_since", "bound", "default", "margin", "quantile", "warm_up")

    def __init__(
        self,
        *,
        default: int,
        bound: int | None = None,
        quantile: float = 0.99,
        margin: float = 1.25,
        warm_up: int = 10,
        keep: int = 2000,
    ) -> None:
        self.default = default
        self.bound = bound
        self.quantile = quantile
        self.margin = margin
        self.warm_up = warm_up
        """Answered packs needed before what they used sets the budget."""
        self._seen: list[float] = []
        self._keep = keep
        self._cached: int | None = None
        self._since = 0

    @classmethod
    def for_task(cls, task: Task) -> AnswerBudget:
        """The job's budget: the task's ``answer_tokens`` as set, else learnt under the default
        and the schema's bound (with a margin: the estimate is not the provider's tokenizer)."""
        default = task.answer_budget + PER_ITEM_OVERHEAD
        if task.answer_tokens is not None or task.is_text:
            # Free text grows with its input (a translation): a budget learnt per item, blind
            # to the input's length, would cut long ones. It keeps the default.
            return cls(default=default, warm_up=sys.maxsize)
        bound = schema_bound(answer_schema(task))  # as packed: a lone field's value alone
        if bound is not None:
            bound = math.ceil(1.5 * bound) + 2 + PER_ITEM_OVERHEAD
        return cls(default=default, bound=bound)

    def observe(self, completion_tokens: int, answered: int) -> None:
        """A completion of ``completion_tokens`` answered all its ``answered`` items."""
        if answered <= 0 or completion_tokens <= 0:
            return
        self._add(completion_tokens / answered)

    def on_truncated(self, max_tokens: int, size: int) -> None:
        """A pack was cut off at ``max_tokens``: its items need more than they were given."""
        self._add(1.5 * max_tokens / max(1, size))
        self._cached = None  # at once: the next packs must not be cut the same way

    def _add(self, per_item: float) -> None:
        seen = self._seen
        seen.append(per_item)
        if len(seen) > 2 * self._keep:
            del seen[: len(seen) - self._keep]  # a sliding window, trimmed in bulk
        self._since += 1
        if self._since >= 16:  # the quantile is re-read every few packs, not every request
            self._cached = None

    def per_item(self) -> int:
        """The answer budget of one item now (what the pack's ``max_tokens`` is made of)."""
        ceiling = self.default if self.bound is None else min(self.default, self.bound)
        if len(self._seen) < self.warm_up:
            return max(1, ceiling)
        if self._cached is None:
            ordered = sorted(self._seen[-self._keep :])
            high = ordered[min(len(ordered) - 1, math.floor(self.quantile * len(ordered)))]
            self._cached = math.ceil(high * self.margin) + 1
            self._since = 0
        # The learnt size may pass the schema's bound (punctuation, a tokenizer that counts
        # differently) but never the user's or the default budget.
        return max(1, min(self.default, self._cached))
