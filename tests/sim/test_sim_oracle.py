from __future__ import annotations

from typing import Any, Literal

import jsonschema
import pydantic
import pytest
from sim_testkit import EXAMPLE_TASKS, HOSTILE_TEXTS, load_records, load_task

from llmbatch._task import Task
from llmbatch.sim import _extract as extract
from llmbatch.sim import oracle_answer
from llmbatch.sim.oracle import sentiment, text_answer

SENTIMENT_SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["label", "confidence"],
    "additionalProperties": False,
}

SYNTHETIC_SCHEMAS: list[dict[str, Any]] = [
    {"type": "string"},
    {"type": "integer", "minimum": 3, "maximum": 7},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    {"type": "number", "maximum": -5},
    {"type": "boolean"},
    {"type": "null"},
    {"enum": ["a", "b", None]},
    {"const": "fixed"},
    {"type": "string", "minLength": 40, "maxLength": 50},
    {"type": "string", "maxLength": 3},
    {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 4},
    {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 2}, "maxItems": 1},
    {"type": "array", "items": {"enum": ["x", "y", "z"]}, "uniqueItems": True},
    {
        "type": "object",
        "properties": {
            "email": {"type": ["string", "null"]},
            "amount": {"anyOf": [{"type": "number"}, {"type": "null"}]},
            "price": {"type": "string"},
            "date": {"type": "string", "format": "date"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "flag": {"type": "boolean"},
            "count": {"type": "integer", "minimum": 1, "maximum": 5},
            "nested": {
                "type": "object",
                "properties": {"summary": {"type": "string"}, "score": {"type": "integer"}},
                "required": ["summary", "score"],
                "additionalProperties": False,
            },
            "ref": {"$ref": "#/$defs/level"},
            "either": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
        },
        "required": ["email", "amount", "price", "date", "tags", "flag", "count", "nested", "ref"],
        "additionalProperties": False,
        "$defs": {"level": {"type": "string", "enum": ["low", "high"]}},
    },
]

TEXTS = [
    "I love it, excellent! Contact me at ann@example.com or +1 555-123-4567 on March 3, 2026.",
    "Broken, terrible, refund please. I paid $49.99 for ORD-12345.",
    "",
    "x",
    *HOSTILE_TEXTS,
]


class Review(pydantic.BaseModel):
    class Detail(pydantic.BaseModel):
        aspect: str
        good: bool

    label: Literal["positive", "negative", "neutral"]
    stars: int = pydantic.Field(ge=1, le=5)
    summary: str | None = None
    details: list[Detail]


@pytest.mark.parametrize("name", sorted(EXAMPLE_TASKS))
def test_answers_validate_for_every_example_record(name: str) -> None:
    task = load_task(name)
    validator = jsonschema.Draft202012Validator(task.item_schema)
    for record in load_records(name):
        text = task.render_input(record)
        answer = oracle_answer(task.item_schema, task.instructions, text)
        assert validator.is_valid(answer), (record["id"], answer)
        assert task.validate_answer(answer) is None
        if task.is_text:
            assert answer.strip() and "\n" not in answer


@pytest.mark.parametrize("schema", SYNTHETIC_SCHEMAS, ids=lambda s: str(s.get("type", "other")))
def test_answers_validate_for_synthetic_schemas(schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    for text in TEXTS:
        answer = oracle_answer(schema, "Do the task.", text)
        assert validator.is_valid(answer), (text, answer)


def test_answers_validate_for_a_strict_pydantic_schema() -> None:
    task = Task(instructions="Rate the review.", output=Review)
    for text in TEXTS:
        assert task.validate_answer(oracle_answer(task.item_schema, task.instructions, text)) is None


def test_answers_are_deterministic() -> None:
    task = load_task("extract")
    text = task.render_input(load_records("extract")[0])
    first = oracle_answer(task.item_schema, task.instructions, text)
    assert all(oracle_answer(task.item_schema, task.instructions, text) == first for _ in range(3))
    assert oracle_answer(SENTIMENT_SCHEMA, "x", "great") == oracle_answer(SENTIMENT_SCHEMA, "x", "great")


def test_answers_depend_on_the_text() -> None:
    answers = {str(oracle_answer({"type": "string"}, "Echo.", f"text number {i}")) for i in range(10)}
    assert len(answers) == 10


def test_sentiment() -> None:
    assert oracle_answer(SENTIMENT_SCHEMA, "Classify.", "I love it, excellent")["label"] == "positive"
    assert oracle_answer(SENTIMENT_SCHEMA, "Classify.", "broken, terrible, refund")["label"] == "negative"
    assert oracle_answer(SENTIMENT_SCHEMA, "Classify.", "It is a kettle.")["label"] == "neutral"
    assert sentiment("great great terrible") == ("positive", 1)
    two_labels = {"enum": ["negative", "positive"]}
    assert oracle_answer(two_labels, "Classify.", "It is a kettle.") == "negative"  # tie: first value


def test_confidence_grows_with_lexicon_strength() -> None:
    weak = oracle_answer(SENTIMENT_SCHEMA, "Classify.", "good")["confidence"]
    strong = oracle_answer(SENTIMENT_SCHEMA, "Classify.", "good great excellent amazing")["confidence"]
    assert 0 <= weak < strong <= 1


def test_extraction() -> None:
    text = (
        "Order ORD-22817 was due on March 3, 2026; I paid €1,240.50. Call +1 555-123-4567 "
        "or write to tom.b@example.com, see https://example.com/x.\nRegards,\nTom Becker"
    )
    assert extract.email(text) == "tom.b@example.com"
    assert extract.phone(text) == "+1 555-123-4567"
    assert extract.date(text) == "2026-03-03"
    assert extract.amount(text) == 1240.5
    assert extract.order_id(text) == "ORD-22817"
    assert extract.url(text) == "https://example.com/x"
    assert extract.name(text) == "Tom Becker"
    assert extract.date("shipped 2026-02-27 (late)") == "2026-02-27"
    assert extract.date("on 3 March 2026") == "2026-03-03"
    assert extract.phone("shipped 2026-02-27, call (555) 987-6543") == "(555) 987-6543"
    assert extract.amount("it was $49.99") == 49.99
    assert extract.name("Hi, my name is Ana Lima and I need help") == "Ana Lima"
    assert extract.name("Great job, team! — Priya") == "Priya"


def test_extraction_gives_null_when_absent_and_allowed() -> None:
    task = load_task("extract")
    answer = oracle_answer(task.item_schema, task.instructions, "Subject: hi\nhello? is anyone there")
    assert {k: answer[k] for k in ("name", "email", "phone", "order_id", "date", "amount")} == dict.fromkeys(
        ("name", "email", "phone", "order_id", "date", "amount")
    )
    required = {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]}
    assert isinstance(oracle_answer(required, "Extract.", "no address here")["email"], str)


def test_extracted_amount_follows_the_schema_type() -> None:
    def schema(kind: str) -> dict[str, Any]:
        return {"type": "object", "properties": {"amount": {"type": kind}}, "required": ["amount"]}

    text = "refund of $89.99 please"
    assert oracle_answer(schema("number"), "Extract.", text) == {"amount": 89.99}
    assert oracle_answer(schema("integer"), "Extract.", text) == {"amount": 90}
    assert oracle_answer(schema("string"), "Extract.", text) == {"amount": "89.99"}


def test_text_answers() -> None:
    assert text_answer("Translate to Spanish.", "Good morning, my friend.") == "Bueno mañana, mi amigo."
    assert text_answer("Translate.", "Xylophone zebra") == "Xylophone zebra"  # unknown words kept
    assert text_answer("Summarize it.", "First one here. Second one.") == "First one here."
    long = " ".join(f"w{i}" for i in range(30))
    assert text_answer("Summarize it.", long) == " ".join(f"w{i}" for i in range(12))
    assert text_answer("Echo.", "one two\nthree") == "three two one"
    assert text_answer("Echo.", "  \n ") == "(empty)"
    assert "\n" not in text_answer("Translate.", "line one\nline two")
