"""Pack formats: render a pack of items into one request, parse one completion
back into one outcome per item. Pure functions, no I/O.

Layout of every packed request (the stable prefix first, for provider prompt caching)::

    [schema:  the pack's answer schema, json and tools formats]
    system:  [task system prompt] / instructions / format rules
             [/ answer schema, numbered format only: nothing else carries it]
    user:    Items (3):
             k1: "text of the pack's first item, JSON-quoted"
             k2: "..."

Each thing is said once. The answer schema travels in the response format (or
the tool) where one enforces it, and in the prompt only where none does. A task
whose answer is an object of one field (``{"category": ...}``) is answered in a
pack by the field's value alone (``"k1": "audio"``) and wrapped back on parsing:
the wrapper would cost every item its field name in the answer.

A pack of one is a plain request, the one a script sending one record per
request would make: the instructions, the record's text as it is, the task's own
schema in the response format (``Single``). It pays no packing rules, no keys
and no per-key schema, so ``--batch-size 1``, every last attempt sent alone and
every single-record check cost what a plain request costs.

Item text is always JSON-quoted, so quotes, newlines, keys, separators or
instructions inside a record stay inside its string and cannot move answers.
Keys start with a letter, so a model that renumbers the items 1..n writes keys
that match nothing: those answers are caught as missing, never misattributed.
The schema formats name items by place (``k1``..``kN``), because providers cache
the schema as part of the prefix and it must be the same for every pack of a
size; the free-text formats, with nothing to hold the model to the keys, use the
job-unique ``Item.key`` (``k17``), so a key from outside the pack matches nothing.

Formats (``PACKERS[name]``), one module each:

- ``json``: one JSON object, one required property per item key, each holding
  the item's answer schema (strict ``json_schema``: constrained decoding cannot
  skip or renumber an item).
- ``tools``: the same schema as the parameters of one forced function call.
- ``numbered``: ``key: answer`` lines out, for providers without structured output.
- ``separator``: free-text answers between ``---NEXT-TEXT---`` lines, accepted
  only when the count matches exactly (positional, so all or nothing).
"""

from __future__ import annotations

from typing import Protocol

from .._exceptions import UsageError
from .._task import Task
from .._types import Capabilities
from ._base import ITEMS_HEADER, PER_ITEM_OVERHEAD, PackFormat, shared_prefix_tokens
from .json import JsonPack
from .numbered import NumberedPack
from .schema import SCHEMA_LINE, SINGLE_FIELD, answer_schema, lone_field, pack_schema, single_schema
from .separator import SEPARATOR, TEXTS_HEADER, SeparatorPack
from .single import SINGLE, SINGLE_MARGIN, SINGLE_SCHEMA_RULE, Single
from .tools import ToolsPack

__all__ = [
    "ITEMS_HEADER",
    "PACKERS",
    "PER_ITEM_OVERHEAD",
    "SCHEMA_LINE",
    "SEPARATOR",
    "SINGLE",
    "SINGLE_FIELD",
    "SINGLE_MARGIN",
    "SINGLE_SCHEMA_RULE",
    "TEXTS_HEADER",
    "JsonPack",
    "NumberedPack",
    "PackFormat",
    "SeparatorPack",
    "Single",
    "ToolsPack",
    "answer_schema",
    "choose_packer",
    "lone_field",
    "pack_schema",
    "shared_prefix_tokens",
    "single_schema",
]

PACKERS: dict[str, PackFormat] = {
    packer.name: packer for packer in (JsonPack(), ToolsPack(), NumberedPack(), SeparatorPack())
}


class Sender(Protocol):
    """What a pack format needs to know of the provider that will send it."""

    @property
    def name(self) -> str: ...
    @property
    def capabilities(self) -> Capabilities: ...


def choose_packer(name: str, task: Task, provider: Sender | None = None) -> PackFormat:
    """The pack format ``name`` for ``task``, checked once for every front end: a known name,
    a free-text format only for free-text answers and, given the provider that will send it,
    a format it can carry (stating the schema in the prompt where its model does not see
    the one that constrains it)."""
    packer = PACKERS.get(name)
    if packer is None:
        raise UsageError(f"unknown pack format {name!r}; choose from {', '.join(PACKERS)}")
    if packer.text_only and not task.is_text:
        raise UsageError(f"the {name} pack format is for free-text answers; use json or numbered")
    if provider is None:
        return packer
    can = provider.capabilities
    if packer.mode == "json_schema" and not can.json_schema:
        raise UsageError(f"provider {provider.name} has no structured output; use --pack numbered")
    if packer.mode == "tool" and not can.tools:
        raise UsageError(f"provider {provider.name} has no tool calls; use --pack numbered")
    return packer.with_schema_in_prompt() if can.schema_in_prompt else packer
