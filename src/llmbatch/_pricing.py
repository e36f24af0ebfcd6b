"""Prices as data, the cost model, and what each model accepts.

Prices live in ``data/prices.json`` (USD per million tokens), overridable by a
user file. A model with no price has an *unknown* cost (``None``), never 0.

The same file is the model table: an entry may also say what the model takes
(``ModelTraits``: ``"reasoning"``, ``"sampling"``), so that providers choose
parameters from data rather than from substrings of model names. Keys that
start with ``_`` (``"_source"``, ``"_checked"`` in an entry, ``"_comment"`` at the
top) are notes and are never read as prices.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final, TypeVar

from ._exceptions import UsageError
from ._types import Usage

__all__ = ["DEFAULT_TRAITS", "FREE", "ModelTraits", "Price", "PriceTable", "model_traits", "price_for"]


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    """A cache write of five minutes (Anthropic: 1.25× input); None: written at the input price."""
    cache_write_1h: float | None = None
    """A cache write of an hour (Anthropic: 2× input); None: as ``cache_write``."""
    batch: float = 1.0
    batch_cache: str = "stack"
    """How a batch's cache reads are priced (``BATCH_CACHE``): ``stack``, the cached rate times
    the batch multiplier (Anthropic, OpenAI's gpt-5 family); ``input``, the batch input rate
    (Groq: its batch discount does not stack with caching); ``cached``, the cached rate not
    discounted again (Gemini)."""

    def cost(self, usage: Usage, *, batch: bool = False) -> float:
        """What ``usage`` costs: cache reads and writes at their rates, the rest of the prompt at
        the input price; times the batch multiplier for batch and flex answers (Anthropic's
        cache multipliers stack on its batch discount; ``batch_cache`` says where they do not)."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        long = min(usage.cache_write_1h_tokens, written)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        write_rate = self.input if self.cache_write is None else self.cache_write
        long_rate = write_rate if self.cache_write_1h is None else self.cache_write_1h
        multiplier = self.batch if batch else 1.0
        reads = cached * cached_rate * multiplier
        if batch and self.batch_cache == "input":
            reads = cached * self.input * multiplier
        elif batch and self.batch_cache == "cached":
            reads = cached * cached_rate
        rest = (
            (usage.prompt_tokens - cached - written) * self.input
            + (written - long) * write_rate
            + long * long_rate
            + usage.completion_tokens * self.output
        )
        return (rest * multiplier + reads) / 1_000_000

    @classmethod
    def from_entry(cls, entry: Any) -> Price:
        """A price from its JSON object (an entry of ``prices.json``, a job's stored price);
        ValueError where input or output is missing or not a number."""
        try:
            return cls(
                input=float(entry["input"]),
                output=float(entry["output"]),
                cached_input=_opt(entry.get("cached_input")),
                cache_write=_opt(entry.get("cache_write")),
                cache_write_1h=_opt(entry.get("cache_write_1h")),
                batch=float(entry.get("batch", 1.0)),
                batch_cache=_batch_cache(entry.get("batch_cache", "stack")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"needs numeric input and output: {exc}") from exc


BATCH_CACHE: Final = ("stack", "input", "cached")


def _batch_cache(value: Any) -> str:
    if value not in BATCH_CACHE:
        raise ValueError(f"batch_cache must be one of {', '.join(BATCH_CACHE)}, not {value!r}")
    return str(value)


class PriceTable:
    """Model name → Price. ``PriceTable.load(user_file)`` merges a user file over the shipped one."""

    def __init__(self, prices: dict[str, Price]) -> None:
        self._prices = prices

    @classmethod
    def load(cls, override: str | Path | None = None) -> PriceTable:
        raw = dict(_shipped())
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
            try:
                prices[model] = Price.from_entry(entry)
            except ValueError as exc:
                raise UsageError(f"price entry for {model!r} {exc}") from exc
        return cls(prices)

    def get(self, model: str) -> Price | None:
        """The price of ``model``; a dated snapshot (``gpt-4o-2024-08-06``) falls back to its family.

        Only a date suffix is dropped: ``gpt-4o-audio-preview`` is not ``gpt-4o``,
        and an unknown price must stay unknown rather than become a wrong one.
        """
        return _lookup(self._prices, model)


FREE: Final = Price(input=0.0, output=0.0)
"""What a backend that bills nothing (local, sim) costs."""


def price_for(model: str, *, billed: bool, prices: PriceTable | None) -> Price | None:
    """The price of ``model``: free where the backend bills nothing, else the table's entry
    (None: unknown, so cost is not counted and ``--max-cost`` cannot be kept)."""
    if not billed:
        return FREE
    return prices.get(model) if prices else None


@dataclass(frozen=True, slots=True)
class ModelTraits:
    """What a model accepts, from its entry in the model table; a model not in it gets the
    defaults, which are what chat models have always taken.

    ``reasoning``: a reasoning model (OpenAI's o-series and gpt-5 family). Its answer
    budget is ``max_completion_tokens`` (it rejects ``max_tokens``) and no default
    temperature is sent to it. ``sampling``: whether it takes the sampling parameters
    ``temperature`` and ``top_p`` — always (True), never (False), or only when the
    task's params hold these values (``{"reasoning_effort": "none"}`` for gpt-5.1 on).

    >>> model_traits("o3").reasoning, model_traits("o3").sampling
    (True, False)
    """

    reasoning: bool = False
    sampling: bool | Mapping[str, Any] = True
    cache_min_tokens: int | None = None
    """The shortest prompt prefix the provider caches for this model (Anthropic: 1,024 to 4,096
    tokens by model; a shorter one is silently not cached); None: not known."""

    def takes_sampling(self, params: Mapping[str, Any]) -> bool:
        """Whether ``temperature`` and ``top_p`` may be sent along with ``params``."""
        if isinstance(self.sampling, bool):
            return self.sampling
        return all(params.get(name) == value for name, value in self.sampling.items())


DEFAULT_TRAITS: Final = ModelTraits()
"""A model the table says nothing about: a chat model that takes ``max_tokens`` and a temperature."""


def model_traits(model: str) -> ModelTraits:
    """The traits of ``model`` in the shipped table (a dated snapshot has its family's)."""
    return _lookup(_traits(), model) or DEFAULT_TRAITS


@functools.cache
def _shipped() -> Mapping[str, Any]:
    """The shipped table, read once per process (price tables and traits both come from it)."""
    table: dict[str, Any] = json.loads(resources.files("llmbatch").joinpath("data/prices.json").read_text())
    return table


@functools.cache
def _traits() -> dict[str, ModelTraits]:
    traits: dict[str, ModelTraits] = {}
    for model, entry in _shipped().items():
        if model.startswith("_") or not isinstance(entry, dict):
            continue
        if "reasoning" in entry or "sampling" in entry or "cache_min_tokens" in entry:
            minimum = entry.get("cache_min_tokens")
            traits[model] = ModelTraits(
                reasoning=bool(entry.get("reasoning", False)),
                sampling=entry.get("sampling", True),
                cache_min_tokens=minimum if isinstance(minimum, int) and minimum > 0 else None,
            )
    return traits


_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
"""A dated snapshot suffix: ``-2024-08-06`` (OpenAI) or ``-20241022`` (Anthropic)."""

V = TypeVar("V")


def _lookup(table: Mapping[str, V], model: str) -> V | None:
    """``table[model]``, else its family's entry when ``model`` is a dated snapshot.

    Only a date suffix is dropped: ``gpt-4o-audio-preview`` is not ``gpt-4o``.
    """
    if model in table:
        return table[model]
    family = _SNAPSHOT.sub("", model)
    if family != model:
        for name in (family, f"{family}-latest"):
            if name in table:
                return table[name]
    return None


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)
