"""Prices as data and the cost model.

Prices live in ``data/prices.json`` (USD per million tokens), overridable by a
user file. A model with no price has an *unknown* cost (``None``), never 0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ._exceptions import UsageError
from ._types import Usage

__all__ = ["Price", "PriceTable"]


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    batch: float = 1.0

    def cost(self, usage: Usage, *, batch: bool = False) -> float:
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        dollars = (
            (usage.prompt_tokens - cached) * self.input
            + cached * cached_rate
            + usage.completion_tokens * self.output
        ) / 1_000_000
        return dollars * (self.batch if batch else 1.0)


class PriceTable:
    """Model name → Price. ``PriceTable.load(user_file)`` merges a user file over the shipped one."""

    def __init__(self, prices: dict[str, Price]) -> None:
        self._prices = prices

    @classmethod
    def load(cls, override: str | Path | None = None) -> PriceTable:
        raw = json.loads(resources.files("llmbatch").joinpath("data/prices.json").read_text())
        if override is not None:
            try:
                user = json.loads(Path(override).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UsageError(f"cannot read prices file {override}: {exc}") from exc
            if not isinstance(user, dict):
                raise UsageError(f"prices file {override} must hold a JSON object of model → price")
            raw.update(user)
        prices: dict[str, Price] = {}
        for model, entry in raw.items():
            if model.startswith("_"):
                continue
            prices[model] = _price(model, entry)
        return cls(prices)

    def get(self, model: str) -> Price | None:
        """The price of ``model``; a dated snapshot (``gpt-4o-2024-08-06``) falls back to its family.

        Only a date suffix is dropped: ``gpt-4o-audio-preview`` is not ``gpt-4o``,
        and an unknown price must stay unknown rather than become a wrong one.
        """
        if model in self._prices:
            return self._prices[model]
        family = _SNAPSHOT.sub("", model)
        if family != model:
            for name in (family, f"{family}-latest"):
                if name in self._prices:
                    return self._prices[name]
        return None


_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
"""A dated snapshot suffix: ``-2024-08-06`` (OpenAI) or ``-20241022`` (Anthropic)."""


def _price(model: str, entry: Any) -> Price:
    try:
        return Price(
            input=float(entry["input"]),
            output=float(entry["output"]),
            cached_input=_opt(entry.get("cached_input")),
            cache_write=_opt(entry.get("cache_write")),
            batch=float(entry.get("batch", 1.0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"price entry for {model!r} needs numeric input and output: {exc}") from exc


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)
