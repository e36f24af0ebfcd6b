"""Reading a chat-completions body: which pack format it is, its items, its schema.

The simulator understands the request layout that ``llmbatch._pack``
renders, by its visible markers only (it imports nothing from the packer, so a
change of format there shows up as a failing simulator test rather than a
silent agreement)::

    json / tools   response_format json_schema, or a forced function, whose schema
                   requires one property per item key; user "Items (N):" lines
    numbered       no schema; user "Items (N):" then ``KEY: "json text"`` lines
    separator      no schema; user "Texts (N):" then JSON texts between ---NEXT-TEXT---
    plain          anything else: the last user message is the one item

Token counting matches the client's estimate exactly: every message costs its
content's ``count_tokens`` plus ``MESSAGE_OVERHEAD``, and a schema sent along
(response format or tool parameters) costs the tokens of its canonical JSON.
The model reads the schemas first, then the messages: the order in which
``_prefix_cache`` matches cached prefixes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from llmbatch._pack.tokens import MESSAGE_OVERHEAD, count_tokens, split_tokens
from llmbatch._task import canonical_json

from ._prefix_cache import MIN_TOKENS, prefix_hashes

__all__ = ["InvalidRequest", "Prompt", "PromptKind", "read_body"]

PromptKind = Literal["json", "tools", "numbered", "separator", "plain"]

SEPARATOR = "---NEXT-TEXT---"
SCHEMA_LINE = "Answer schema: "
TEXT_SCHEMA: dict[str, Any] = {"type": "string"}
JSON_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}
"""What a ``{"type": "json_object"}`` request gets: valid JSON, one string field."""

_ITEMS = re.compile(r"Items \((\d+)\):")
_TEXTS = re.compile(r"Texts \((\d+)\):")
_KEY = re.compile(r"([^\s:]+): ")
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_DECODER = json.JSONDecoder()


class InvalidRequest(Exception):
    """The body is not a chat-completions request the simulator can answer (a 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class Item:
    """One item to answer: its key in the pack, its text and its answer schema."""

    key: str
    text: str
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Prompt:
    """What a request asks, as the simulated model understands it."""

    kind: PromptKind
    items: tuple[Item, ...]
    instructions: str
    prompt_tokens: int
    max_tokens: int | None
    fingerprint: str
    """Hash of the messages and schemas: identical requests share it."""
    tool_name: str | None = None
    model: str | None = None
    prefix_hashes: tuple[str, ...] = ()
    """What OpenAI's automatic prompt cache would match on (``_prefix_cache``)."""


def read_body(body: Any, *, cache_marks: bool = False) -> Prompt:
    """Understand one request body; raises ``InvalidRequest`` when it is malformed.

    ``cache_marks`` also hashes the prefixes OpenAI's prompt cache would match on.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if body.get("stream"):
        raise InvalidRequest("streaming is not supported by the simulator", "stream")
    messages = _messages(body.get("messages"))
    max_tokens = _max_tokens(body)
    schema, tool_name, counted = _schema(body)
    prompt_tokens = sum(count_tokens(text) + MESSAGE_OVERHEAD for _, text in messages)
    prompt_tokens += sum(count_tokens(canonical_json(s)) for s in counted)
    system = "\n\n".join(text for role, text in messages if role in ("system", "developer"))
    users = [text for role, text in messages if role == "user"]
    if not users:
        raise InvalidRequest("the request has no user message", "messages")
    user = users[-1]
    fingerprint = hashlib.sha256(
        canonical_json([body["messages"], body.get("response_format"), body.get("tools")]).encode()
    ).hexdigest()
    model = body.get("model") if isinstance(body.get("model"), str) else None
    marks = _prefix_marks(counted, messages, model) if cache_marks and prompt_tokens >= MIN_TOKENS else ()

    def prompt(kind: PromptKind, items: tuple[Item, ...], instructions: str) -> Prompt:
        return Prompt(
            kind, items, instructions, prompt_tokens, max_tokens, fingerprint, tool_name, model, marks
        )

    keyed = _keyed_items(user)
    if schema is not None and keyed and _is_pack_schema(schema, [k for k, _ in keyed]):
        texts = dict(keyed)
        # Constrained decoding writes the required keys in schema order.
        items = tuple(Item(key, texts.get(key, ""), _item_schema(schema, key)) for key in schema["required"])
        return prompt("tools" if tool_name else "json", items, system)
    if schema is None and keyed:
        item_schema = _schema_line(system)
        return prompt("numbered", tuple(Item(k, t, item_schema) for k, t in keyed), system)
    separated = _separated_texts(user) if schema is None else []
    if separated:
        item_schema = _schema_line(system)
        items = tuple(Item(str(i), text, item_schema) for i, text in enumerate(separated, 1))
        return prompt("separator", items, system)
    plain_schema = schema if schema is not None else _plain_schema(body, system)
    # Without a system prompt the user message carries the instructions too.
    return prompt("plain", (Item("", user, plain_schema),), system or user)


def _prefix_marks(schemas: list[Any], messages: list[tuple[str, str]], model: str | None) -> tuple[str, ...]:
    """``prefix_hashes`` of the prompt in reading order: the schemas, then each message after
    its overhead (as tokens naming its role), so that the tokens number ``prompt_tokens``."""
    tokens = [token for schema in schemas for token in split_tokens(canonical_json(schema))]
    for role, text in messages:
        tokens += [f"<{role}>"] * MESSAGE_OVERHEAD
        tokens += split_tokens(text)
    return prefix_hashes(tokens, model or "")


def _messages(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("messages must be a non-empty list", "messages")
    out: list[tuple[str, str]] = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise InvalidRequest(f"messages[{i}] must be an object with a valid role", "messages")
        content = message.get("content")
        if content is None and message["role"] in ("assistant", "tool"):
            content = ""
        if isinstance(content, list):
            parts = [p.get("text") for p in content if isinstance(p, dict)]
            if not all(isinstance(p, str) for p in parts) or len(parts) != len(content):
                raise InvalidRequest(f"messages[{i}].content has unsupported parts", "messages")
            content = "\n".join(parts)  # type: ignore[arg-type]
        if not isinstance(content, str):
            raise InvalidRequest(f"messages[{i}].content must be a string", "messages")
        out.append((message["role"], content))
    return out


def _max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidRequest(f"{name} must be a positive integer", name)
        return value
    return None


def _schema(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None, list[Any]]:
    """The answer's schema, the forced tool's name (if any), and every schema sent along."""
    counted: list[Any] = []
    response_schema: dict[str, Any] | None = None
    fmt = body.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
            raise InvalidRequest("response_format.type must be text, json_object or json_schema")
        if fmt["type"] == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
                raise InvalidRequest("response_format.json_schema.schema must be an object")
            response_schema = spec["schema"]
            counted.append(response_schema)
    tools = body.get("tools")
    if tools is None:
        return response_schema, None, counted
    functions: dict[str, dict[str, Any]] = {}
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list", "tools")
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest("each tool must be a function with a name", "tools")
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict):
            raise InvalidRequest("tool parameters must be a JSON Schema object", "tools")
        if "parameters" in function:
            counted.append(parameters)
        functions[function["name"]] = parameters
    choice = body.get("tool_choice", "auto")
    if choice == "none" or not functions:
        return response_schema, None, counted
    name = next(iter(functions))
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name", name)
        if name not in functions:
            raise InvalidRequest(f"tool_choice names an unknown function {name!r}", "tool_choice")
    return functions[name], name, counted


def _plain_schema(body: dict[str, Any], system: str) -> dict[str, Any]:
    """A plain request without a schema sent along: JSON mode's one field, else the schema
    the system prompt states (``Answer schema: ``), else free text."""
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        return JSON_OBJECT_SCHEMA
    return _schema_line(system)


def _keyed_items(user: str) -> list[tuple[str, str]]:
    """``[(key, text)]`` from an ``Items (N):`` message; empty when it is not one."""
    header, _, rest = user.partition("\n")
    if not _ITEMS.fullmatch(header.strip()):
        return []
    items: list[tuple[str, str]] = []
    for line in rest.split("\n"):  # not splitlines(): U+2028 may sit inside a quoted text
        match = _KEY.match(line)
        if match is None:
            continue
        try:
            text, end = _DECODER.raw_decode(line, match.end())
        except json.JSONDecodeError:
            continue
        if isinstance(text, str) and not line[end:].strip():
            items.append((match.group(1), text))
    return items


def _separated_texts(user: str) -> list[str]:
    """The texts of a ``Texts (N):`` message; empty when it is not one."""
    header, _, rest = user.partition("\n")
    if not _TEXTS.fullmatch(header.strip()):
        return []
    texts: list[str] = []
    pos = 0
    glue = f"\n{SEPARATOR}\n"
    while pos < len(rest):
        try:
            text, pos = _DECODER.raw_decode(rest, pos)
        except json.JSONDecodeError:
            return texts
        if not isinstance(text, str):
            return texts
        texts.append(text)
        if rest.startswith(glue, pos):
            pos += len(glue)
        else:
            break
    return texts


def _is_pack_schema(schema: dict[str, Any], keys: list[str]) -> bool:
    required = schema.get("required")
    props = schema.get("properties")
    return (
        isinstance(required, list)
        and isinstance(props, dict)
        and set(keys) <= set(required)
        and all(key in props for key in required)
    )


def _item_schema(schema: dict[str, Any], key: str) -> dict[str, Any]:
    defs = schema.get("$defs")
    if isinstance(defs, dict) and isinstance(defs.get("answer"), dict):
        answer: dict[str, Any] = defs["answer"]
        return answer
    prop = schema["properties"][key]
    ref = prop.get("$ref") if isinstance(prop, dict) else None
    if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(defs, dict):
        target = defs.get(ref.removeprefix("#/$defs/"))
        if isinstance(target, dict):
            return target
    return prop if isinstance(prop, dict) else TEXT_SCHEMA


def _schema_line(system: str) -> dict[str, Any]:
    """The item schema from the last ``Answer schema: `` line (the packer writes it last)."""
    for line in reversed(system.split("\n")):
        if line.startswith(SCHEMA_LINE):
            try:
                schema = json.loads(line[len(SCHEMA_LINE) :])
            except json.JSONDecodeError:
                break
            if isinstance(schema, dict):
                return schema
            break
    return TEXT_SCHEMA
