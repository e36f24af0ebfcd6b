"""The answer budget: bounded by what the schema allows, then by what the answers use."""

from __future__ import annotations

import pytest

from llmbatch._engine.answer_budget import AnswerBudget, schema_bound

LABELS = [f"label_{i}" for i in range(57)]


@pytest.mark.parametrize(
    ("schema", "most"),
    [
        ({"type": "boolean"}, 1),
        ({"type": "string", "enum": ["yes", "no"]}, 3),
        ({"type": "integer", "minimum": 0, "maximum": 5}, 1),
        ({"type": "integer", "minimum": -1_000_000, "maximum": 10}, 4),
        ({"type": "string", "maxLength": 10}, 12),
        ({"type": "array", "items": {"type": "boolean"}, "maxItems": 3}, 8),
        ({"anyOf": [{"type": "string", "enum": ["a"]}, {"type": "null"}]}, 3),
    ],
)
def test_bounded_schemas_have_a_longest_answer(schema: dict[str, object], most: int) -> None:
    bound = schema_bound(schema)
    assert bound is not None and bound <= most


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string"},
        {"type": "number"},
        {"type": "array", "items": {"type": "boolean"}},
        {"type": "object", "properties": {"why": {"type": "string"}}},
    ],
)
def test_unbounded_schemas_have_none(schema: dict[str, object]) -> None:
    assert schema_bound(schema) is None


def test_an_object_adds_its_keys_and_refs_resolve() -> None:
    label = {"type": "string", "enum": LABELS}
    flat = schema_bound({"type": "object", "properties": {"label": label}})
    via_ref = schema_bound(
        {"type": "object", "properties": {"label": {"$ref": "#/$defs/l"}}, "$defs": {"l": label}}
    )
    assert flat == via_ref
    assert flat is not None and flat < 20  # far below the 60 of the default budget


def test_before_enough_answers_the_budget_is_the_tighter_of_default_and_bound() -> None:
    assert AnswerBudget(default=68, bound=20).per_item() == 20
    assert AnswerBudget(default=68).per_item() == 68


def test_the_budget_follows_a_high_quantile_of_the_answers_seen() -> None:
    budget = AnswerBudget(default=68, warm_up=10)
    for _ in range(200):
        budget.observe(completion_tokens=20 * 10, answered=20)  # 10 tokens per item
    assert budget.per_item() == 14  # 10 x 1.25 margin, + 1
    budget.observe(completion_tokens=20 * 30, answered=20)  # one rare long pack: below the quantile
    assert budget.per_item() <= 14


def test_a_truncation_raises_the_budget_at_once() -> None:
    budget = AnswerBudget(default=68, warm_up=10)
    for _ in range(20):
        budget.observe(completion_tokens=100, answered=10)
    before = budget.per_item()
    for _ in range(3):
        budget.on_truncated(max_tokens=before * 10, size=10)
    assert budget.per_item() > before


def test_the_budget_never_passes_the_default() -> None:
    budget = AnswerBudget(default=30, warm_up=1)
    for _ in range(50):
        budget.observe(completion_tokens=1000, answered=1)
    assert budget.per_item() == 30


def test_a_bounded_number_leaves_room_for_a_small_models_long_decimals() -> None:
    # SmolLM2 writes confidences as 0.9999999999999999; with one token a digit that is 18.
    bound = schema_bound({"type": "number", "minimum": 0, "maximum": 1})
    assert bound is not None and bound >= 18
