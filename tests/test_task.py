"""Task: TOML loading, input templates, strict output schemas, fingerprints, answer checks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pydantic
import pytest

from llmbatch import ItemError, Task, UsageError
from llmbatch._task import canonical_json, strict_schema

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SENTIMENT = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["label", "confidence"],
}


def write(tmp_path: Path, text: str, name: str = "task.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def walk_objects(node: Any) -> list[dict[str, Any]]:
    """Every sub-schema that describes an object."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node:
            found.append(node)
        for value in node.values():
            found.extend(walk_objects(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(walk_objects(value))
    return found


def contains_key(node: Any, key: str) -> bool:
    if isinstance(node, dict):
        return key in node or any(contains_key(v, key) for v in node.values())
    if isinstance(node, list):
        return any(contains_key(v, key) for v in node)
    return False


# -- loading task files ----------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_task_loads(path: Path) -> None:
    task = Task.from_file(path)
    assert task.instructions.strip()
    assert task.name == path.stem
    jsonschema.Draft202012Validator.check_schema(task.item_schema)
    assert task.fingerprint.startswith("task-v1:")


def test_examples_are_found() -> None:
    assert {p.stem for p in EXAMPLES.glob("*.toml")} >= {"sentiment", "extract", "translate"}


def test_sentiment_example_has_strict_schema_and_params() -> None:
    task = Task.from_file(EXAMPLES / "sentiment.toml")
    assert not task.is_text
    assert task.id == "id"
    assert task.template_fields == ("title", "text")
    assert task.answer_budget == 20
    assert task.temperature is None  # unset: 0 where the model takes one (the provider decides)
    schema = task.item_schema
    assert schema["required"] == ["label", "confidence"]
    assert schema["additionalProperties"] is False
    assert task.validate_answer({"label": "positive", "confidence": 0.9}) is None


def test_translate_example_is_text() -> None:
    task = Task.from_file(EXAMPLES / "translate.toml")
    assert task.is_text
    assert task.item_schema == {"type": "string"}
    assert task.answer_budget == 120


def test_extract_example_nullable_fields_accept_null() -> None:
    task = Task.from_file(EXAMPLES / "extract.toml")
    answer = {
        "name": None,
        "email": None,
        "phone": None,
        "order_id": "ORD-1",
        "date": None,
        "amount": None,
        "intent": "refund",
    }
    assert task.validate_answer(answer) is None
    assert task.validate_answer({**answer, "intent": None}) is not None  # intent is required, not nullable


def test_minimal_task_file_defaults(tmp_path: Path) -> None:
    task = Task.from_file(write(tmp_path, 'instructions = "  Summarise.  "\n', "mini.toml"))
    assert task.instructions == "Summarise."
    assert task.input == "{text}"
    assert task.is_text
    assert task.name == "mini"
    assert task.id is None
    assert task.temperature is None  # unset: the provider sends 0 where the model takes one
    assert task.params == {}
    assert task.answer_budget == 200


def test_name_in_file_wins_over_stem(tmp_path: Path) -> None:
    task = Task.from_file(write(tmp_path, 'name = "mine"\ninstructions = "x"\n'))
    assert task.name == "mine"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('instructions = "unclosed\n', "not valid TOML"),
        ("instructions = \n", "not valid TOML"),
        ('name = "x"\n', "instructions"),
        ('instructions = "x"\ncolour = "blue"\n', "colour"),
        ('instructions = "x"\n[params]\nseed = 1979-05-27\n', "params.seed must be a number"),
        ('instructions = "x"\n[params]\ntemperature = "hot"\n', "params.temperature"),
        ('instructions = "x"\n[params]\ntemperature = true\n', "params.temperature"),
        ('instructions = "x"\n[params]\nanswer_tokens = "20"\n', "params.answer_tokens"),
        ('instructions = "x"\n[params]\nanswer_tokens = 2.5\n', "params.answer_tokens"),
        ('instructions = "x"\n[params]\nanswer_tokens = 0\n', "answer_tokens must be at least 1"),
        ('instructions = "   "\n', "non-empty instructions"),
        ('instructions = "x"\noutput = "json"\n', "output must be"),
        ('instructions = "x"\ninput = "{a.b}"\n', "{a.b}"),
        ('instructions = "x"\n[output]\ntype = "bogus"\n', "output schema is not valid"),
    ],
)
def test_bad_task_file_is_usage_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as info:
        Task.from_file(path)
    assert fragment in str(info.value)


def test_bad_task_file_message_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'instructions = "x"\nextra = 1\n')
    with pytest.raises(UsageError, match="extra") as info:
        Task.from_file(path)
    assert str(path) in str(info.value)


def test_missing_task_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        Task.from_file(tmp_path / "nope.toml")


def test_task_file_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read task file"):
        Task.from_file(tmp_path)


def test_task_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('instructions = "café"\n'.encode("latin-1"))
    with pytest.raises(UsageError, match="not valid TOML"):
        Task.from_file(path)


def test_integer_temperature_in_file_is_the_same_task_as_float(tmp_path: Path) -> None:
    a = Task.from_file(write(tmp_path, 'instructions = "x"\n[params]\ntemperature = 0\n', "a.toml"))
    b = Task.from_file(write(tmp_path, 'instructions = "x"\n[params]\ntemperature = 0.0\n', "b.toml"))
    assert a.fingerprint == b.fingerprint


# -- input templates --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{a.b}", "{a.b} must be a plain field name"),
        ("{a[0]}", "must be a plain field name"),
        ("{0}", "{0} must be a plain field name"),
        ("{}", "empty field {}"),
        ("{text!r}", "must be a plain field name"),
        ("{text:>10}", "must be a plain field name"),
        ("{text", "is not valid"),
        ("text}", "is not valid"),
    ],
)
def test_bad_template_is_usage_error(template: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        Task(instructions="x", input=template)
    assert fragment in str(info.value)


def test_template_renders_fields_and_literals() -> None:
    task = Task(instructions="x", input="Title: {title}\nBody: {body} {{literal}}")
    assert task.template_fields == ("title", "body")
    text = task.render_input({"title": "Hi", "body": "there", "unused": 1})
    assert text == "Title: Hi\nBody: there {literal}"


def test_template_renders_non_strings_as_json() -> None:
    task = Task(instructions="x", input="{n} {flag} {tags} {obj}")
    text = task.render_input({"n": 3, "flag": True, "tags": ["a", "é"], "obj": {"k": 1}})
    assert text == '3 true ["a", "é"] {"k": 1}'


def test_render_input_missing_field() -> None:
    task = Task(instructions="x", input="{title}: {text}")
    with pytest.raises(ItemError, match="no field 'text'") as info:
        task.render_input({"title": "t"})
    assert info.value.kind == "input"


def test_render_input_null_field() -> None:
    task = Task(instructions="x")
    with pytest.raises(ItemError, match=r"field 'text' is empty \(null\)"):
        task.render_input({"text": None})


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_render_input_empty_text(text: str) -> None:
    task = Task(instructions="x")
    with pytest.raises(ItemError, match="input text is empty"):
        task.render_input({"text": text})


# -- output schemas ----------------------------------------------------------------------


class Address(pydantic.BaseModel):
    city: str
    zip: str | None = None


class Person(pydantic.BaseModel):
    name: str
    age: int | None = None
    home: Address
    previous: Address | None = None
    others: list[Address] = []
    kind: Literal["a", "b"] = "a"


def assert_strict(schema: dict[str, Any]) -> None:
    objects = walk_objects(schema)
    assert objects
    for node in objects:
        assert node["additionalProperties"] is False, node
        assert node["required"] == list(node["properties"]), node


def test_pydantic_output_is_strict_everywhere() -> None:
    task = Task(instructions="x", output=Person)
    schema = task.item_schema
    assert_strict(schema)
    assert not contains_key(schema, "$ref")
    assert not contains_key(schema, "$defs")
    assert not contains_key(schema, "title")
    props = schema["properties"]
    assert set(props) == {"name", "age", "home", "previous", "others", "kind"}
    assert props["home"]["properties"]["city"] == {"type": "string"}


def test_pydantic_optional_fields_allow_null_and_required_ones_do_not() -> None:
    task = Task(instructions="x", output=Person)
    home = {"city": "Oslo", "zip": None}
    full = {"name": "A", "age": None, "home": home, "previous": None, "others": [home], "kind": "a"}
    assert task.validate_answer(full) is None
    assert task.validate_answer({**full, "name": None}) is not None
    assert task.validate_answer({**full, "home": None}) is not None
    assert task.validate_answer({**full, "kind": None}) is None  # had a default: optional → nullable
    missing_age = {k: v for k, v in full.items() if k != "age"}
    assert "age" in (task.validate_answer(missing_age) or "")
    assert task.validate_answer({**full, "extra": 1}) is not None
    assert task.validate_answer({**full, "home": {"city": "Oslo", "zip": None, "x": 1}}) is not None
    assert task.validate_answer({**full, "others": [{"city": "Oslo"}]}) is not None  # nested: all required


def test_pydantic_nested_model_answer_validates() -> None:
    task = Task(instructions="x", output=Person)
    answer = Person(name="A", home=Address(city="Rome")).model_dump()
    assert task.validate_answer(answer) is None


class Node(pydantic.BaseModel):
    name: str
    children: list[Node] = []


def test_recursive_pydantic_model_is_usage_error() -> None:
    with pytest.raises(UsageError, match="recursive"):
        Task(instructions="x", output=Node)


def test_dict_schema_refs_are_inlined() -> None:
    # The pack schema nests the item schema under its own $defs, so refs must not survive.
    output = {
        "type": "object",
        "properties": {"where": {"$ref": "#/$defs/Place"}},
        "required": ["where"],
        "$defs": {"Place": {"type": "object", "properties": {"city": {"type": "string"}}}},
    }
    task = Task(instructions="x", output=output)
    assert not contains_key(task.item_schema, "$ref")
    assert_strict(task.item_schema)
    assert task.validate_answer({"where": {"city": None}}) is None
    assert output["$defs"]  # the caller's dict is not modified


def test_dict_schema_with_unknown_ref_is_usage_error() -> None:
    with pytest.raises(UsageError, match="does not define"):
        Task(instructions="x", output={"type": "object", "properties": {"a": {"$ref": "#/$defs/Nope"}}})


def test_dict_schema_is_strictified() -> None:
    task = Task(instructions="x", output={"type": "object", "properties": {"a": {"type": "integer"}}})
    assert task.item_schema == {
        "type": "object",
        "properties": {"a": {"type": ["integer", "null"]}},
        "required": ["a"],
        "additionalProperties": False,
    }


def test_strict_schema_handles_enums_unions_and_lists() -> None:
    schema = {
        "type": "object",
        "title": "T",
        "properties": {
            "e": {"type": "string", "enum": ["x", "y"]},
            "u": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "n": {"type": ["string", "null"]},
            "items": {"type": "array", "items": {"type": "object", "properties": {"v": {"type": "string"}}}},
        },
        "required": ["items"],
    }
    out = strict_schema(schema)
    props = out["properties"]
    assert props["e"] == {"type": ["string", "null"], "enum": ["x", "y", None]}
    assert props["u"]["anyOf"][-1] == {"type": "null"}
    assert props["n"] == {"type": ["string", "null"]}
    assert props["items"]["type"] == "array"  # required: not made nullable
    assert_strict(out)
    assert "title" not in out
    assert schema["title"] == "T" and "additionalProperties" not in schema  # input untouched


class Counts(pydantic.BaseModel):
    counts: dict[str, int]


@pytest.mark.parametrize(
    "output",
    [
        Counts,
        {"type": "object"},
        {"type": "object", "additionalProperties": {"type": "integer"}},
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True},
        {"type": "array", "items": {"type": "object"}},
    ],
    ids=["pydantic-dict", "bare-object", "map", "open-object", "nested-bare-object"],
)
def test_free_form_objects_are_usage_errors(output: Any) -> None:
    # Strict mode would silently turn a map into "only {}": say so instead.
    with pytest.raises(UsageError, match="free-form keys"):
        Task(instructions="x", output=output)


def test_explicitly_empty_object_is_allowed() -> None:
    task = Task(instructions="x", output={"type": "object", "properties": {}})
    assert task.validate_answer({}) is None
    assert task.validate_answer({"a": 1}) is not None


@pytest.mark.parametrize("output", ["json", "", 42, {}, [1], {"type": "object", "properties": [1]}])
def test_bad_output_is_usage_error(output: Any) -> None:
    with pytest.raises(UsageError):
        Task(instructions="x", output=output)


def test_empty_instructions_is_usage_error() -> None:
    with pytest.raises(UsageError, match="non-empty instructions"):
        Task(instructions=" \n")


# -- fingerprint --------------------------------------------------------------------------


BASE: dict[str, Any] = {
    "instructions": "Classify.",
    "input": "{text}",
    "output": SENTIMENT,
    "system": "You are careful.",
    "temperature": 0.0,
    "answer_tokens": 20,
}


@pytest.mark.parametrize(
    "change",
    [
        {"instructions": "Classify!"},
        {"system": "You are sloppy."},
        {"system": None},
        {"input": "{title}: {text}"},
        {"output": {**SENTIMENT, "required": ["label"]}},
        {"output": "text"},
        {"temperature": 0.7},
        {"temperature": None},
        {"answer_tokens": 21},
    ],
    ids=lambda c: next(iter(c)),
)
def test_fingerprint_changes_with_what_shapes_an_answer(change: dict[str, Any]) -> None:
    assert Task(**{**BASE, **change}).fingerprint != Task(**BASE).fingerprint


@pytest.mark.parametrize("change", [{"name": "other"}, {"id": "key"}], ids=lambda c: next(iter(c)))
def test_fingerprint_ignores_what_does_not_shape_an_answer(change: dict[str, Any]) -> None:
    assert Task(**{**BASE, **change}).fingerprint == Task(**BASE).fingerprint


def test_fingerprint_is_stable() -> None:
    a, b = Task(**BASE), Task(**BASE)
    assert a.fingerprint == b.fingerprint
    reordered = {"required": SENTIMENT["required"], "properties": SENTIMENT["properties"], "type": "object"}
    assert Task(**{**BASE, "output": reordered}).fingerprint == a.fingerprint
    assert a.fingerprint == Task(**BASE).fingerprint  # and not random per process run
    assert len(a.fingerprint.split(":")[1]) == 32


def test_fingerprint_default_answer_budget_counts() -> None:
    # answer_tokens=None means the default budget (60 for JSON): the same request.
    a = Task(**{**BASE, "answer_tokens": None})
    b = Task(**{**BASE, "answer_tokens": 60})
    assert a.fingerprint == b.fingerprint


def test_answer_tokens_below_one() -> None:
    with pytest.raises(UsageError):
        Task(instructions="x", answer_tokens=0)


def test_canonical_json_is_order_independent() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'


# -- answers -----------------------------------------------------------------------------


def test_validate_answer_reasons() -> None:
    task = Task(instructions="x", output=SENTIMENT)
    assert task.validate_answer({"label": "positive", "confidence": 1}) is None
    reason = task.validate_answer({"label": "great", "confidence": 0.5})
    assert reason is not None and reason.startswith("label: ") and "great" in reason
    reason = task.validate_answer({"label": "positive", "confidence": 2})
    assert reason is not None and reason.startswith("confidence: ")
    reason = task.validate_answer({"label": "positive"})
    assert reason is not None and "confidence" in reason and "required" in reason
    reason = task.validate_answer("positive")
    assert reason is not None and "object" in reason
    assert "\n" not in (task.validate_answer({"label": "x" * 1000, "confidence": 0}) or "")
    assert len(task.validate_answer({"label": "x" * 1000, "confidence": 0}) or "") <= 300


def test_validate_text_answer() -> None:
    task = Task(instructions="x")
    assert task.validate_answer("hola") is None
    assert task.validate_answer(5) is not None
    assert task.validate_answer(None) is not None


# -- every unknown key at once ---------------------------------------------------------


def test_every_unknown_key_is_reported_at_once_with_its_close_match(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'instrucions = "x"\ncolour = "blue"\nsystm = "s"\n[escalate]\nfeild = "confidence"\nbelow = 0.5\n',
    )
    with pytest.raises(UsageError) as info:
        Task.from_file(path)
    message = str(info.value)
    assert message.startswith(f"task file {path}: unknown keys ")
    assert "\n" not in message
    assert "'instrucions' (did you mean 'instructions'?)" in message
    assert "'systm' (did you mean 'system'?)" in message
    assert "'escalate.feild' (did you mean 'escalate.field'?)" in message
    assert "'colour'" in message and "the keys are name, instructions" in message  # no close match: list them
    # The misspelt key's "missing" twin would only repeat the same fix.
    assert "required" not in message.lower()


def test_unknown_keys_and_bad_values_share_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'instructions = "x"\nmodels = [1]\noutput = 5\nnam = "n"\n')
    with pytest.raises(UsageError) as info:
        Task.from_file(path)
    message = str(info.value)
    assert "'nam' (did you mean 'name'?)" in message
    assert "models.0: " in message
    assert 'output: must be "text" or an [output] table' in message


# -- output schemas no answer can match ---------------------------------------------------


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        (_object(label={"type": "string", "enum": []}), "output.properties.label: enum is empty"),
        (
            _object(n={"type": "number", "minimum": 5, "maximum": 1}),
            "output.properties.n: no number is >= 5 and <= 1",
        ),
        (_object(n={"type": "number", "minimum": 1, "exclusiveMaximum": 1}), "no number is >= 1 and < 1"),
        (_object(n={"type": "number", "exclusiveMinimum": 3, "maximum": 2.5}), "no number is > 3 and <= 2.5"),
        (
            _object(n={"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 2}),
            "no integer is > 1 and < 2",
        ),
        (_object(n={"type": "integer", "minimum": 1.2, "maximum": 1.8}), "no integer is >= 1.2 and <= 1.8"),
        (
            _object(s={"type": "string", "minLength": 5, "maxLength": 2}),
            "output.properties.s: minLength 5 is above maxLength 2",
        ),
        (
            _object(a={"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 1}),
            "minItems 3 is above maxItems 1",
        ),
        (
            {**_object(label={"type": "string"}), "required": ["lable"]},
            "output: required lists 'lable' (did you mean 'label'?), which is not in properties",
        ),
        (_object(k={"type": "string", "const": 3}), "output.properties.k: const 3 is not a string"),
        (
            _object(e={"type": "integer", "enum": [1, "two"]}),
            "output.properties.e: enum value 'two' is not an integer",
        ),
        (_object(e={"type": "boolean", "enum": [True, 0]}), "enum value 0 is not a boolean"),
        (
            {"type": "array", "items": _object(tag={"enum": []})},
            "output.items.properties.tag: enum is empty",
        ),
        (
            _object(u={"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 2, "maximum": 1}]}),
            "output.properties.u.anyOf[1]: no integer",
        ),
        (
            {**_object(p={"$ref": "#/$defs/Place"}), "$defs": {"Place": _object(kind={"enum": []})}},
            "output.$defs.Place.properties.kind: enum is empty",
        ),
    ],
    ids=[
        "empty-enum",
        "min>max",
        "min=exclusive-max",
        "exclusive-min>max",
        "no-integer-between",
        "no-integer-in-fraction",
        "minLength>maxLength",
        "minItems>maxItems",
        "required-not-a-property",
        "const-type",
        "enum-type",
        "enum-bool-is-not-0",
        "items",
        "anyOf",
        "defs",
    ],
)
def test_an_output_schema_no_answer_can_match_is_a_usage_error(output: dict[str, Any], problem: str) -> None:
    # Every answer would fail validation and be asked again (and paid for) until the
    # records fail: say where the schema is impossible before anything is sent.
    with pytest.raises(UsageError) as info:
        Task(instructions="x", output=output)
    assert str(info.value).startswith("no answer can match the output schema: ")
    assert problem in str(info.value)


@pytest.mark.parametrize(
    "output",
    [
        _object(n={"type": "number", "minimum": 1, "maximum": 1}),
        _object(n={"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 3}),
        _object(n={"type": "integer", "minimum": 1.5, "maximum": 2}),
        _object(n={"type": "number", "minimum": float("-inf"), "maximum": 1}),
        _object(e={"type": "integer", "enum": [1, 2.0]}),  # 2.0 is an integer in JSON Schema
        _object(e={"type": ["string", "null"], "enum": ["a", None]}),
        _object(e={"enum": ["a", 1, None]}),  # no type: any value may be listed
        _object(k={"type": "string", "const": "k"}),
        _object(s={"type": "string", "minLength": 2, "maxLength": 2}),
        {**_object(a={"type": "string"}, b={"type": "string"}), "required": ["a"]},
    ],
    ids=[
        "min=max",
        "integer-between",
        "integer-at-max",
        "infinite-bound",
        "integral-float",
        "nullable-enum",
        "untyped-enum",
        "const",
        "exact-length",
        "some-required",
    ],
)
def test_an_output_schema_some_answer_can_match_is_accepted(output: dict[str, Any]) -> None:
    Task(instructions="x", output=output)


def test_every_impossible_place_is_named_at_once() -> None:
    output = {
        **_object(a={"enum": []}, b={"type": "string", "minLength": 3, "maxLength": 1}),
        "required": ["c"],
    }
    with pytest.raises(UsageError) as info:
        Task(instructions="x", output=output)
    message = str(info.value)
    assert "output.properties.a:" in message and "output.properties.b:" in message and "'c'" in message
    assert "\n" not in message


class Impossible(pydantic.BaseModel):
    score: int = pydantic.Field(ge=5, le=1)


class Outer(pydantic.BaseModel):
    tags: list[str] = pydantic.Field(min_length=3, max_length=1)
    inner: Impossible


def test_a_pydantic_model_no_answer_can_match_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        Task(instructions="x", output=Outer)
    message = str(info.value)
    assert "output.properties.tags: minItems 3 is above maxItems 1" in message
    assert "output.$defs.Impossible.properties.score: no integer is >= 5 and <= 1" in message


def test_a_task_file_whose_schema_no_answer_can_match_names_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'instructions = "x"\n[output]\ntype = "object"\n'
        '[output.properties.label]\ntype = "string"\nenum = []\n',
    )
    with pytest.raises(UsageError) as info:
        Task.from_file(path)
    assert str(info.value).startswith(f"task file {path}: no answer can match the output schema: ")
    assert "output.properties.label: enum is empty" in str(info.value)


def test_a_schema_error_in_a_task_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'instructions = "x"\n[output]\ntype = "bogus"\n')
    with pytest.raises(
        UsageError, match=f"^task file {re.escape(str(path))}: the task's output schema is not valid"
    ):
        Task.from_file(path)


def test_a_malformed_required_is_not_fixed_silently() -> None:
    # strict_schema rewrites required from the properties, which used to hide this.
    with pytest.raises(UsageError, match="output schema is not valid"):
        Task(instructions="x", output={**_object(label={"type": "string"}), "required": "label"})


# -- the template's fields -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "fields"),
    [
        ("{title}: {text} ({title})", ("title", "text")),
        ("{{literal}} {text}", ("text",)),
        ("no fields at all", ()),
    ],
)
def test_template_fields_names_each_field_once_in_order(template: str, fields: tuple[str, ...]) -> None:
    # What the ingest step checks the first records against: a repeated field is one field.
    assert Task(instructions="x", input=template).template_fields == fields
