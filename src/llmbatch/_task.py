"""The task: what to ask of every record, and what an answer must look like.

A task comes from a TOML file (``Task.from_file``) or from Python::

    class Sentiment(pydantic.BaseModel):
        label: Literal["positive", "negative", "neutral"]
        confidence: float

    task = llmbatch.Task(instructions="Classify the review.", input="{text}", output=Sentiment)

Why one module: a task is one value. Its fingerprint (the cache key and the job's
identity), its strict schema and its rendering are functions of the same fields, and the
TOML and pydantic routes must build the same value.
"""

from __future__ import annotations

import copy
import difflib
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
from ._satisfiable import unsatisfiable
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
        """The field names, each once, in order of first use."""
        return tuple(dict.fromkeys(name for _, name in self.parts if name is not None))

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


_TABLES: dict[tuple[str, ...], type[pydantic.BaseModel]] = {(): _TaskFile, ("escalate",): _Escalate}
"""The task file's tables whose keys are fixed, by their path in the file (``[output]`` is a
JSON Schema; ``[params]`` is handled in ``from_file``)."""

_EXPECTED: dict[tuple[str, ...], str] = {("output",): 'must be "text" or an [output] table (a JSON Schema)'}
"""Messages for keys that take several kinds of value, where pydantic's first one misleads."""


def _file_problems(error: pydantic.ValidationError) -> str:
    """Everything wrong in a task file's keys, as one line: every unknown key, each with its
    close match, then the first problem of each other key.

    A key reported as missing is left out when an unknown key is its misspelling
    (``instrucions``): the fix of the one is the fix of the other.
    """
    unknown: list[str] = []
    unmatched: set[tuple[str, ...]] = set()
    meant: set[tuple[str, ...]] = set()
    other: dict[tuple[str, ...], str] = {}
    # Unknown keys first: pydantic lists them last, but they decide which "missing" to drop.
    for item in sorted(error.errors(), key=lambda item: item["type"] != "extra_forbidden"):
        loc = tuple(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            table, key = loc[:-1], loc[-1]
            known = list(_TABLES[table].model_fields) if table in _TABLES else []
            match = difflib.get_close_matches(key, known, n=1)
            if match:
                meant.add((*table, match[0]))
                unknown.append(f"{'.'.join(loc)!r} (did you mean {'.'.join((*table, match[0]))!r}?)")
            else:
                unmatched.add(table)
                unknown.append(repr(".".join(loc)))
            continue
        path = _key_path(loc)
        if item["type"] == "missing" and path in meant:
            continue
        message = _EXPECTED.get(path, item["msg"])
        other.setdefault(path, f"{'.'.join(loc if path not in _EXPECTED else path)}: {message}")
    parts = []
    if unknown:
        parts.append(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
    for table in sorted(unmatched):
        where = f" of [{'.'.join(table)}]" if table else ""
        parts.append(f"the keys{where} are {', '.join(_TABLES[table].model_fields)}")
    parts.extend(other.values())
    return "; ".join(parts)


def _key_path(loc: tuple[str, ...]) -> tuple[str, ...]:
    """The part of an error's location that names keys of the file, not pydantic's union tags."""
    path: list[str] = []
    for part in loc:
        table = _TABLES.get(tuple(path))
        if table is None or part not in table.model_fields:
            break
        path.append(part)
    return tuple(path) or loc[:1]


@dataclass(frozen=True, slots=True)
class Task:
    """One LLM task to run over every record.

    ``output`` is ``"text"`` for a free-text answer, a JSON Schema (dict) for
    one item's answer, or a pydantic model class. ``answer_tokens`` is the
    answer budget per item, used to size ``max_tokens`` to the pack.
    ``temperature`` None (the default) leaves it to the provider: 0 for models that
    take one, nothing for reasoning models. ``params`` are passed to the provider
    (``top_p``, ``seed``, ``reasoning_effort``...), which checks them against its own list.
    """

    instructions: str
    input: str = "{text}"
    output: Any = "text"
    id: str | None = None
    system: str | None = None
    name: str = "task"
    temperature: float | None = None
    answer_tokens: int | None = None
    models: tuple[str, ...] = ()
    """A model cascade, cheapest first: records the first cannot answer go to the next."""
    escalate_field: str | None = None
    escalate_below: float | None = None
    """Also escalate valid answers whose ``escalate_field`` (a confidence) is below this."""
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """Provider parameters (the task file's ``[params]`` but temperature and answer_tokens)."""
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
        reserved = sorted({"temperature", "answer_tokens"} & set(self.params))
        if reserved:
            raise UsageError(
                f"{reserved[0]} is a field of the task, not one of its params: pass {reserved[0]}="
            )
        if not _is_json(dict(self.params)):
            raise UsageError(
                "the task's params must be JSON values: numbers, strings, booleans, lists, dicts"
            )
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
            raise UsageError(f"task file {path}: {_file_problems(exc)}") from None
        try:
            # Checked here as well as in __post_init__, so that the message names the file.
            _Template.compile(spec.input)
            _output_schema(spec.output)
        except UsageError as exc:
            raise UsageError(f"task file {path}: {exc}") from None
        params = dict(spec.params)
        temperature = params.pop("temperature", None)
        answer_tokens = params.pop("answer_tokens", None)
        # The rest go to the provider, which knows which it takes; here only that they are JSON
        # (TOML has dates and times, which JSON, the request bodies and the fingerprint have not).
        for name, value in params.items():
            if not _is_json(value):
                raise UsageError(
                    f"task file {path}: params.{name} must be a number, string, boolean, array or table"
                )
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
            params=params,
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
        """The record fields the ``input`` template uses, each once, in order of first use.

        >>> Task(instructions="x", input="{title}: {text} ({title})").template_fields
        ('title', 'text')
        """
        return self._template.fields

    @property
    def answer_budget(self) -> int:
        """Answer tokens allowed per item."""
        if self.answer_tokens is not None:
            return self.answer_tokens
        return 200 if self.is_text else 60

    def fingerprint_parts(self) -> dict[str, Any]:
        parts: dict[str, Any] = {
            "instructions": self.instructions,
            "system": self.system,
            "input": self.input,
            "schema": self._schema,
            # Unset hashes as the 0.0 that was the default before a temperature could be
            # unset, so earlier jobs and cache entries still match; a set one is marked,
            # because some providers send a temperature only when the task sets one.
            "temperature": 0.0 if self.temperature is None else self.temperature,
            "answer_tokens": self.answer_budget,
        }
        if self.temperature is not None:
            parts["temperature_set"] = True
        if self.params:  # absent when empty: a task without params hashes as it always did
            parts["params"] = dict(self.params)
        return parts

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
        return _strict_form(output.model_json_schema())
    if isinstance(output, Mapping):
        if not output:
            raise UsageError("the output schema is empty")
        return _strict_form(copy.deepcopy(dict(output)))
    raise UsageError(f"output must be 'text', a JSON Schema or a pydantic model, not {output!r}")


def _strict_form(schema: dict[str, Any]) -> dict[str, Any]:
    """The strict form of the user's schema, once it is valid and some answer can match it.

    Both are checked on the schema as written: ``strict_schema`` rewrites ``required``
    and nullability, which would hide a mistake rather than report it.
    """
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise UsageError(f"the task's output schema is not valid: {exc.message}") from exc
    problems = unsatisfiable(schema)
    if problems:
        raise UsageError(f"no answer can match the output schema: {'; '.join(problems)}")
    # Inline refs: the pack schema nests the item schema under its own ``$defs``,
    # where the item's ``#/$defs/...`` refs would not resolve.
    return strict_schema(_inline_refs(schema))


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


def _is_json(value: Any) -> bool:
    """Whether a TOML value is also a JSON value (TOML's dates and times are not)."""
    if isinstance(value, dict):
        return all(_is_json(v) for v in value.values())
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    return isinstance(value, str | int | float | bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _hash(version: str, value: JSON) -> str:
    digest = hashlib.sha256(f"{version}:{canonical_json(value)}".encode()).hexdigest()
    return f"{version}:{digest[:32]}"
