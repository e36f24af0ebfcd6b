"""Core data types that flow through the pipeline.

records ─read─▶ Item ─plan─▶ pack (tuple of Item) ─render─▶ Request
─provider─▶ Completion ─parse─▶ {key: Outcome}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

JSON = Any
"""A value that came from, or goes to, JSON."""


@dataclass(frozen=True, slots=True)
class Item:
    """One record, ready to pack.

    ``key`` is the short name the item goes by inside a pack. It is unique in the
    job (derived from the record's position) and starts with a letter, so a
    model that renumbers the items 1..n — small models do — writes keys that
    match nothing: those answers are caught as missing, never misattributed.
    """

    index: int
    id: str
    text: str

    @property
    def key(self) -> str:
        return f"k{self.index}"


StructuredMode = Literal["json_schema", "tool", "text"]


@dataclass(frozen=True, slots=True)
class Request:
    """A provider-neutral request for one pack.

    ``system`` is the stable prefix (system prompt, instructions, format rules,
    answer schema): byte-identical across the requests of a job so that provider
    prompt caching matches it. ``user`` carries the items. ``temperature`` is None
    when the task sets none (the provider then picks, per model); ``params`` are the
    task's provider parameters (``[params]``), checked and sent by the provider.
    """

    system: str
    user: str
    mode: StructuredMode
    schema: Mapping[str, Any] | None
    max_tokens: int
    temperature: float | None
    est_prompt_tokens: int
    schema_name: str = "answers"
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Completion:
    """What a provider answered: the text (or tool arguments) and its metadata."""

    content: str
    finish_reason: str
    usage: Usage
    latency: float
    headers: Mapping[str, str] = field(default_factory=dict)
    model: str = ""


OutcomeStatus = Literal["ok", "missing", "invalid"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One item's result from one completion."""

    status: OutcomeStatus
    answer: JSON = None
    reason: str = ""

    @classmethod
    def ok(cls, answer: JSON) -> Outcome:
        return cls("ok", answer)

    @classmethod
    def missing(cls, reason: str = "no answer for this item") -> Outcome:
        return cls("missing", None, reason)

    @classmethod
    def invalid(cls, reason: str) -> Outcome:
        return cls("invalid", None, reason)


IdValue = str | int | float | bool
"""A record's id: the JSON value it had in the input (a number stays a number)."""


@dataclass(frozen=True, slots=True)
class Result:
    """The final state of one record, as written to the output."""

    index: int
    id: IdValue
    """The record's id as its JSON value (a string, or the number it was), or its line number."""
    status: Literal["ok", "failed", "stopped"]
    """``stopped``: the job stopped (budget, auth, interrupt) before the record was answered."""
    answer: JSON = None
    error: str = ""
    error_kind: str = ""
    attempts: int = 0
