"""``json``: one JSON object, one required property per item key (strict ``json_schema``:
constrained decoding cannot skip or renumber an item)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from .._task import Task, canonical_json
from .._types import Completion, Item, Outcome, StructuredMode
from ._base import DATA_RULE, KEYED_INPUT, PackFormat
from ._codec import Pairs, for_all, judge, loads, strip_fences
from .schema import lone_field, pack_schema, place_keys
from .tokens import count_tokens

_REF_TOKENS = count_tokens(':{"$ref":"#/$defs/answer"}')


class JsonPack(PackFormat):
    name = "json"
    mode: ClassVar[StructuredMode] = "json_schema"

    def rules(self, task: Task) -> str:
        return (
            f"{KEYED_INPUT} {DATA_RULE}\n"
            "Answer with one JSON object that has exactly one property per item key, "
            "whose value is that item's answer."
        )

    def keys(self, items: Sequence[Item]) -> list[str]:
        """``k1``..``kN`` by place in the pack, so that every pack of one size has the same schema.

        OpenAI's prompt cache takes the response schema (or the tools) as the start of
        the prefix, so a schema naming job-unique keys would make every request a miss.
        Where the schema is enforced (strict ``json_schema``) it still holds the model to
        exactly these keys (Anthropic's tool takes any key, see ``tool_schema``: a key it
        was not given matches nothing). Answers are matched back by key, so ``parse``
        must get the items in the order rendered.
        """
        return list(place_keys(len(items)))

    def schema(self, task: Task, items: Sequence[Item]) -> dict[str, Any] | None:
        return pack_schema(task, self.keys(items))

    def schema_tokens(self, task: Task, schema: dict[str, Any], items: Sequence[Item]) -> int:
        """Tokens of the pack schema without serialising it: a fixed part plus a part per key.

        Exact, because the estimate never lets a token span punctuation, and every
        piece added per key (``"k7":{"$ref":...}``, ``"k7"`` and the commas)
        starts and ends at punctuation.
        """
        cache: dict[str, int] = self.__dict__.setdefault("_schema_base", {})
        base = cache.get(task.fingerprint)
        if base is None:
            base = cache[task.fingerprint] = count_tokens(canonical_json(pack_schema(task, [])))
        per_keys = sum(2 * (count_tokens(key) + 2) for key in self.keys(items))
        return base + per_keys + len(items) * _REF_TOKENS + 2 * max(0, len(items) - 1)

    def parse_pack(self, task: Task, items: Sequence[Item], completion: Completion) -> dict[str, Outcome]:
        if completion.finish_reason == "length":
            return for_all(items, Outcome.invalid("answer truncated (finish_reason length)"))
        try:
            pairs = loads(strip_fences(completion.content))
        except json.JSONDecodeError as exc:
            return for_all(items, Outcome.invalid(f"answer is not valid JSON: {exc.msg}"))
        if not isinstance(pairs, Pairs):
            return for_all(items, Outcome.invalid("answer is not a JSON object"))
        answers, repeated = pairs.unique()
        keys = self.keys(items)
        field = lone_field(task.item_schema)
        return {
            item.key: judge(task, key, answers, repeated, field)
            for item, key in zip(items, keys, strict=True)
        }
