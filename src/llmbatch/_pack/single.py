"""A pack of one, sent as the plain request a one-record-per-request script would make."""

from __future__ import annotations

import json

from .._task import Task, canonical_json
from .._types import Completion, Outcome, Request, StructuredMode
from ._codec import judged, loads, loads_answer, plain, strip_fences
from .schema import SCHEMA_LINE, SINGLE_FIELD, lone_field, single_schema
from .tokens import MESSAGE_OVERHEAD, count_tokens


class Single:
    """A plain one-record request and its answer: what a pack of one is sent as.

    The system message holds the task's system prompt and instructions (plus the
    answer schema where no response format carries it), the user message the
    record's text as it is, the response format (or tool) the task's own schema.
    Nothing else: this is the request a script sending one record per request makes.
    """

    def render(
        self,
        task: Task,
        mode: StructuredMode,
        text: str,
        answer_tokens: int,
        *,
        schema_in_prompt: bool = False,
    ) -> Request:
        structured = mode != "text" and not task.is_text
        system, system_tokens = self._prefix(task, structured, schema_in_prompt)
        schema = single_schema(task) if structured else None
        schema_tokens, wrapper_tokens = self._fixed_tokens(task)
        est = system_tokens + count_tokens(text) + 2 * MESSAGE_OVERHEAD
        if schema is not None:
            est += schema_tokens
        return Request(
            system=system,
            user=text,
            mode=mode if structured else "text",
            schema=schema,
            max_tokens=answer_tokens + wrapper_tokens + SINGLE_MARGIN,
            temperature=task.temperature,
            est_prompt_tokens=est,
            schema_name="answer",
            params=task.params,
        )

    def parse(self, task: Task, mode: StructuredMode, completion: Completion) -> Outcome:
        if completion.finish_reason == "length":
            return Outcome.invalid("answer truncated (finish_reason length)")
        content = completion.content.strip()
        if task.is_text:
            return judged(task, content)
        if mode == "text":
            return judged(task, plain(loads_answer(task, strip_fences(content))))
        try:
            answer = plain(loads(strip_fences(content)))
        except json.JSONDecodeError as exc:
            return Outcome.invalid(f"answer is not valid JSON: {exc.msg}")
        if task.item_schema.get("type") != "object":
            if not isinstance(answer, dict) or set(answer) != {SINGLE_FIELD}:
                return Outcome.invalid(f"answer is not an object with one field {SINGLE_FIELD!r}")
            answer = answer[SINGLE_FIELD]
        return judged(task, answer)

    def _prefix(self, task: Task, structured: bool, schema_in_prompt: bool) -> tuple[str, int]:
        cache: dict[tuple[str, bool, bool], tuple[str, int]] = self.__dict__.setdefault("_prefixes", {})
        key = (task.fingerprint, structured, schema_in_prompt)
        found = cache.get(key)
        if found is None:
            parts = [task.system.strip()] if task.system else []
            parts.append(task.instructions.strip())
            if not task.is_text and not structured:
                parts.append(SINGLE_SCHEMA_RULE + "\n" + SCHEMA_LINE + canonical_json(task.item_schema))
            elif not task.is_text and schema_in_prompt:
                parts.append(SCHEMA_LINE + canonical_json(task.item_schema))
            system = "\n\n".join(parts)
            found = cache[key] = (system, count_tokens(system))
        return found

    def _fixed_tokens(self, task: Task) -> tuple[int, int]:
        """The response schema's tokens, and the answer tokens of the object around a lone
        field (absent from a packed answer, which the per-item ``answer_tokens`` budget is):
        worked out once per task."""
        cache: dict[str, tuple[int, int]] = self.__dict__.setdefault("_fixed", {})
        found = cache.get(task.fingerprint)
        if found is None:
            field = lone_field(task.item_schema)
            wrapper = 0 if field is None else count_tokens(json.dumps({field: 0})) - 1
            found = cache[task.fingerprint] = (count_tokens(canonical_json(single_schema(task))), wrapper)
        return found


SINGLE_MARGIN = 4
"""Answer tokens a plain request gets beyond its answer budget (the end of the message)."""

SINGLE_SCHEMA_RULE = (
    "Answer with compact JSON on one line, matching the answer schema below. Write nothing else."
)

SINGLE = Single()
