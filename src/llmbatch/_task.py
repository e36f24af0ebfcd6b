"""The task: what to ask of every record, and what an answer must look like.

A task comes from a TOML file (``Task.from_file``) or from Python::

    class Sentiment(pydantic.BaseModel):
        label: Literal["positive", "negative", "neutral"]
        confidence: float

    task = llmbatch.Task(instructions="Classify the review.", input="{text}", output=Sentiment)
"""

from __future__ import annotations

import copy
import hashlib
import json
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pydantic

from ._exceptions import ItemError, UsageError
from ._types import JSON

__all__ = ["Task", "canonical_json", "strict_schema"]

FINGERPRINT_VERSION = "task-v1"
_MEMO_SIZE = 4096
TEXT_SCHEMA: dict[str, Any] = {"type": "string"}


def canonical_json(value: JSON) -> str:
    """JSON with sorted keys and no spaces: the same value always hashes the same."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def strict_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Make a JSON Schema acceptable to OpenAI strict structured output.

    Every object gets ``additionalProperties: false`` and lists all its
    properties in ``required``; a property that was optional becomes a union
    with ``null`` so the model can still leave it empty.
    """
    out = copy.deepcopy(dict(schema))
    _strictify(out)
    return out


def _strictify(node: Any) -> None:
    if isinstance(node, list):
        for child in node:
            _strictify(child)
        return
    if not isinstance(node, dict):
        return
    node.pop("title", None)
    props = node.get("properties")
    if node.get("type") == "object" or isinstance(props, dict):
        extra = node.get("additionalProperties")
        if props is None or extra is True or isinstance(extra, dict):
            # Strict mode forbids keys that are not listed: a map (dict[str, X], or an
            # object without properties) would silently only accept {}.
            raise UsageError(
                "the output schema has an object with free-form keys (a map); strict structured "
                "output needs every key named in 'properties': name them, or use an array of objects"
            )
        props = props if isinstance(props, dict) else {}  # not a schema: check_schema says so later
        node.setdefault("properties", props)
        required = set(node.get("required", []))
        for name, sub in props.items():
            if name not in required:
                _allow_null(sub)
        node["required"] = list(props)
        node["additionalProperties"] = False
    for key in ("properties", "$defs", "definitions"):
        if isinstance(node.get(key), dict):
            for sub in node[key].values():
                _strictify(sub)
    for key in ("items", "anyOf", "oneOf", "allOf", "prefixItems"):
        if key in node:
            _strictify(node[key])


def _allow_null(node: dict[str, Any]) -> None:
    kind = node.get("type")
    if isinstance(kind, str) and kind != "null":
        node["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        node["type"] = [*kind, "null"]
    elif "anyOf" in node and {"type": "null"} not in node["anyOf"]:
        node["anyOf"] = [*node["anyOf"], {"type": "null"}]
    if "enum" in node and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]


@dataclass(frozen=True, slots=True)
class _Template:
    """A ``str.format``-style template compiled once; only plain field names."""

    source: str
    parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def compile(cls, source: str) -> _Template:
        parts: list[tuple[str, str | None]] = []
        try:
            parsed = list(string.Formatter().parse(source))
        except ValueError as exc:
            raise UsageError(f"input template {source!r} is not valid: {exc}") from exc
        for literal, name, spec, conversion in parsed:
            if name == "":
                raise UsageError("input template has an empty field {}; name the field, like {text}")
            if name is not None and (spec or conversion or not name.isidentifier()):
                raise UsageError(f"input template field {{{name}}} must be a plain field name, like {{text}}")
            parts.append((literal, name))
        return cls(source, tuple(parts))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.parts if name is not None)

    def render(self, record: Mapping[str, Any]) -> str:
        """The filled template; ItemError when a field is missing or all fields are blank."""
        chunks: list[str] = []
        blank = True
        for literal, name in self.parts:
            chunks.append(literal)
            if name is None:
                continue
            try:
                value = record[name]
            except KeyError:
                raise ItemError(f"record has no field {name!r} used by the input template") from None
            if value is None:
                raise ItemError(f"field {name!r} is empty (null)")
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            blank = blank and not text.strip()
            chunks.append(text)
        if blank and self.fields:
            # The template's own words ("{title}: {text}" → ": ") are not input.
            raise ItemError("the record's input text is empty")
        return "".join(chunks)


class _Escalate(pydantic.BaseModel):
    """``[escalate]``: send valid answers whose ``field`` is ``below`` a threshold to the next model."""

    model_config = pydantic.ConfigDict(extra="forbid")

    field: str
    below: float


class _TaskFile(pydantic.BaseModel):
    """The TOML task file, validated as untrusted input."""

    model_config = pydantic.ConfigDict(extra="forbid")

    name: str | None = None
    instructions: str
    input: str = "{text}"
    id: str | None = None
    output: str | dict[str, Any] = "text"
    system: str | None = None
    params: dict[str, Any] = pydantic.Field(default_factory=dict)
    models: list[str] = pydantic.Field(default_factory=list)
    escalate: _Escalate | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """One LLM task to run over every record.

    ``output`` is ``"text"`` for a free-text answer, a JSON Schema (dict) for
    one item's answer, or a pydantic model class. ``answer_tokens`` is the
    answer budget per item, used to size ``max_tokens`` to the pack.
    """

    instructions: str
    input: str = "{text}"
    output: Any = "text"
    id: str | None = None
    system: str | None = None
    name: str = "task"
    temperature: float | None = 0.0
    answer_tokens: int | None = None
    models: tuple[str, ...] = ()
    """A model cascade, cheapest first: records the first cannot answer go to the next."""
    escalate_field: str | None = None
    escalate_below: float | None = None
    """Also escalate valid answers whose ``escalate_field`` (a confidence) is below this."""
    _template: _Template = field(init=False, repr=False, compare=False)
    _schema: dict[str, Any] = field(init=False, repr=False, compare=False)
    _validator: Any = field(init=False, repr=False, compare=False)
    _fingerprint: str = field(init=False, repr=False, compare=False)
    _memo: dict[str, str | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.instructions or not self.instructions.strip():
            raise UsageError("the task needs non-empty instructions")
        object.__setattr__(self, "_template", _Template.compile(self.input))
        schema = _output_schema(self.output)
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise UsageError(f"the task's output schema is not valid: {exc.message}") from exc
        object.__setattr__(self, "_schema", schema)
        object.__setattr__(self, "_validator", jsonschema.Draft202012Validator(schema))
        object.__setattr__(self, "_memo", {})
        if self.answer_tokens is not None and self.answer_tokens < 1:
            raise UsageError("answer_tokens must be at least 1")
        object.__setattr__(self, "_fingerprint", _hash(FINGERPRINT_VERSION, self.fingerprint_parts()))

    # -- loading ---------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path) -> Task:
        """Load a TOML task file (see ``docs/tasks.md``)."""
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"task file {path} not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"task file {path} is not valid TOML: {exc}") from exc
        except OSError as exc:
            raise UsageError(f"cannot read task file {path}: {exc.strerror}") from None
        try:
            spec = _TaskFile.model_validate(raw)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise UsageError(f"task file {path}: {where}: {first['msg']}") from None
        params = dict(spec.params)
        temperature = params.pop("temperature", 0.0)
        answer_tokens = params.pop("answer_tokens", None)
        if params:
            raise UsageError(f"task file {path}: unknown params {sorted(params)}")
        # TOML gives these untyped; check them here so a bad value is a UsageError.
        if temperature is not None and not _is_number(temperature):
            raise UsageError(f"task file {path}: params.temperature must be a number")
        if answer_tokens is not None and not (_is_number(answer_tokens) and isinstance(answer_tokens, int)):
            raise UsageError(f"task file {path}: params.answer_tokens must be a whole number")
        return cls(
            instructions=spec.instructions.strip(),
            input=spec.input,
            output=spec.output,
            id=spec.id,
            system=spec.system,
            name=spec.name or path.stem,
            temperature=None if temperature is None else float(temperature),
            answer_tokens=answer_tokens,
            models=tuple(spec.models),
            escalate_field=spec.escalate.field if spec.escalate else None,
            escalate_below=spec.escalate.below if spec.escalate else None,
        )

    # -- derived ---------------------------------------------------------------

    @property
    def is_text(self) -> bool:
        """True when answers are free text rather than JSON values."""
        return self._schema == TEXT_SCHEMA

    @property
    def item_schema(self) -> dict[str, Any]:
        """JSON Schema of one item's answer (strict form)."""
        return self._schema

    @property
    def fingerprint(self) -> str:
        """Hash of everything that shapes an answer; part of the cache key."""
        return self._fingerprint

    @property
    def template_fields(self) -> tuple[str, ...]:
        return self._template.fields

    @property
    def answer_budget(self) -> int:
        """Answer tokens allowed per item."""
        if self.answer_tokens is not None:
            return self.answer_tokens
        return 200 if self.is_text else 60

    def fingerprint_parts(self) -> dict[str, Any]:
        return {
            "instructions": self.instructions,
            "system": self.system,
            "input": self.input,
            "schema": self._schema,
            "temperature": self.temperature,
            "answer_tokens": self.answer_budget,
        }

    def render_input(self, record: Mapping[str, Any]) -> str:
        """The item text for one record; raises ItemError when it cannot be made."""
        text = self._template.render(record)
        if not text.strip():
            raise ItemError("the record's input text is empty")
        return text

    def validate_answer(self, answer: JSON) -> str | None:
        """None when the answer is valid, else a one-line reason.

        Answers repeat (labels, enums), and schema validation is the costliest
        step of the hot path, so verdicts are memoised by the answer's canonical
        JSON in a bounded table.
        """
        memo = self._memo
        try:
            key = canonical_json(answer)
        except (TypeError, ValueError):
            key = None
        if key is not None and key in memo:
            return memo[key]
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(answer))
        reason = None
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path)
            reason = f"{where + ': ' if where else ''}{error.message}"[:300]
        if key is not None:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo[key] = reason
        return reason


def _output_schema(output: Any) -> dict[str, Any]:
    if isinstance(output, str):
        if output != "text":
            raise UsageError('output must be "text" or a JSON Schema table')
        return dict(TEXT_SCHEMA)
    if isinstance(output, type) and issubclass(output, pydantic.BaseModel):
        return strict_schema(_inline_refs(output.model_json_schema()))
    if isinstance(output, Mapping):
        if not output:
            raise UsageError("the output schema is empty")
        # Inline refs here too: the pack schema nests the item schema under its
        # own ``$defs``, where the item's ``#/$defs/...`` refs would not resolve.
        return strict_schema(_inline_refs(copy.deepcopy(dict(output))))
    raise UsageError(f"output must be 'text', a JSON Schema or a pydantic model, not {output!r}")


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace local ``$ref``s by their definitions (pydantic emits them for nested models).

    A recursive definition cannot be inlined; it is a UsageError, not a RecursionError.
    """
    defs = {**schema.pop("definitions", {}), **schema.pop("$defs", {})}

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
                name = ref.rsplit("/", 1)[1]
                if name in seen:
                    raise UsageError(f"the output schema is recursive ({name} contains itself); flatten it")
                if name not in defs:
                    raise UsageError(f"the output schema refers to {ref}, which it does not define")
                return walk(copy.deepcopy(defs[name]), (*seen, name))
            return {k: walk(v, seen) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, seen) for v in node]
        return node

    return walk(schema, ())  # type: ignore[no-any-return]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _hash(version: str, value: JSON) -> str:
    digest = hashlib.sha256(f"{version}:{canonical_json(value)}".encode()).hexdigest()
    return f"{version}:{digest[:32]}"
