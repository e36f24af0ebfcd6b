"""The simulator's quality model: wrong-but-valid answers grow with pack size and mid-pack positions."""

from __future__ import annotations

import random
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from sim_testkit import load_task, make_engine, roundtrip

from llmbatch._task import Task
from llmbatch._types import Item
from llmbatch.sim import SimConfig, oracle_answer
from llmbatch.sim import cli as sim_cli
from llmbatch.sim._quality import PACK_REF, degrade, middle, pack_factor, shorten, wrong_probability

WORDS = ["great", "terrible", "kettle", "fast", "broken", "love", "refund", "fine", "box", "lid", "okay"]


def items(count: int, seed: int = 0, start: int = 0) -> list[Item]:
    rng = random.Random(seed)
    return [
        Item(start + i, f"r{start + i}", " ".join(rng.choices(WORDS, k=8)) + f" #{start + i}")
        for i in range(count)
    ]


def wrong_by_position(task: Task, results: list[tuple[list[Item], Any]]) -> list[int]:
    size = len(results[0][0])
    wrong = [0] * size
    for pack, result in results:
        for position, item in enumerate(pack):
            outcome = result.outcomes[item.key]
            assert outcome.status == "ok", outcome  # wrong answers are still valid answers
            expected = oracle_answer(task.item_schema, result.request.system, item.text)
            wrong[position] += outcome.answer != expected
    return wrong


def test_the_formula() -> None:
    assert pack_factor(1) == 0 and pack_factor(PACK_REF) == 1
    assert wrong_probability(1.0, 1, 0) == 0.0
    assert wrong_probability(0.03, 50, 0) == pytest.approx(0.03)
    assert wrong_probability(0.03, 50, 49) == pytest.approx(0.03)
    assert wrong_probability(0.03, 51, 25) == pytest.approx(0.03 * 50 / 49 * 2)
    assert wrong_probability(0.9, 200, 100) == 1.0  # clamped
    assert middle(0, 9) == 0 and middle(8, 9) == 0 and middle(4, 9) == 1
    assert middle(2, 9) < middle(3, 9) < middle(4, 9)


async def test_a_single_item_is_never_degraded() -> None:
    task = load_task("sentiment")
    engine = make_engine(SimConfig(pack_accuracy_decay=1.0, answer_shortening=1.0))
    for item in items(50):
        result = await roundtrip(engine, "json", task, [item])
        expected = oracle_answer(task.item_schema, result.request.system, item.text)
        assert result.outcomes[item.key].answer == expected
    assert engine.stats.faults == {}


async def test_wrong_rate_follows_pack_size_and_position() -> None:
    task = load_task("sentiment")
    engine = make_engine(SimConfig(seed=2, pack_accuracy_decay=0.3))
    results = []
    for p in range(40):
        pack = items(25, seed=p, start=p * 25)
        results.append((pack, await roundtrip(engine, "json", task, pack)))
    wrong = wrong_by_position(task, results)
    expected = [wrong_probability(0.3, 25, i) * 40 for i in range(25)]
    assert sum(wrong) == pytest.approx(sum(expected), rel=0.2)
    ends = wrong[:4] + wrong[-4:]
    centre = wrong[8:16]
    assert sum(centre) > 1.4 * sum(ends)  # lost in the middle
    assert engine.stats.faults["wrong"] == sum(wrong)

    small = make_engine(SimConfig(seed=2, pack_accuracy_decay=0.3))
    few = []
    for p in range(200):
        pack = items(5, seed=p, start=p * 5)
        few.append((pack, await roundtrip(small, "json", task, pack)))
    assert sum(wrong_by_position(task, few)) / 1000 < sum(wrong) / 1000 / 2


async def test_reproducible_and_position_dependent() -> None:
    task = load_task("sentiment")
    config = SimConfig(seed=4, pack_accuracy_decay=0.5)
    pack = items(20)
    first = await roundtrip(make_engine(config), "json", task, pack)
    again = await roundtrip(make_engine(config), "json", task, pack)
    assert first.outcomes == again.outcomes
    moved = list(reversed(pack))
    other = await roundtrip(make_engine(config), "json", task, moved)
    assert {k: o.answer for k, o in other.outcomes.items()} != {
        k: o.answer for k, o in first.outcomes.items()
    }
    reseeded = await roundtrip(make_engine(SimConfig(seed=5, pack_accuracy_decay=0.5)), "json", task, pack)
    assert reseeded.outcomes != first.outcomes


@pytest.mark.parametrize("fmt", ["json", "tools", "numbered"])
async def test_every_pack_format_and_the_extract_schema_stay_valid(fmt: str) -> None:
    task = load_task("extract")
    engine = make_engine(SimConfig(seed=1, pack_accuracy_decay=1.0))
    pack = [
        Item(i, f"m{i}", f"Refund of $4{i}.50 for ORD-1234{i}, call +1 555 0100 {i}. Anna Berg")
        for i in range(30)
    ]
    result = await roundtrip(engine, fmt, task, pack)
    validator = jsonschema.Draft202012Validator(task.item_schema)
    changed = 0
    for item in pack:
        outcome = result.outcomes[item.key]
        assert outcome.status == "ok"
        validator.validate(outcome.answer)
        changed += outcome.answer != oracle_answer(task.item_schema, result.request.system, item.text)
    assert changed >= 20


def test_degrade_makes_valid_wrong_answers() -> None:
    rng = random.Random(0)
    enum = {"type": "string", "enum": ["positive", "negative", "neutral"]}
    assert degrade(enum, "positive", rng, lambda v: v in enum["enum"]) in ("negative", "neutral")
    assert degrade({"type": "boolean"}, True, rng, lambda v: True) is False
    bounded = {"type": "number", "minimum": 0, "maximum": 1}
    for value in (0.0, 0.5, 0.95, 1.0):
        moved = degrade(bounded, value, rng, lambda v: 0 <= v <= 1)
        assert 0 <= moved <= 1 and abs(moved - value) >= 0.15 - 1e-9
    integer = degrade({"type": "integer", "minimum": 1, "maximum": 5}, 3, rng, lambda v: True)
    assert isinstance(integer, int) and integer != 3
    text = "the quick brown fox jumps over the lazy dog"
    assert degrade({"type": "string"}, text, rng, lambda v: True) != text
    assert degrade({"const": "x"}, "x", rng, lambda v: True) == "x"
    assert degrade(enum, "positive", rng, lambda v: False) == "positive"  # nothing valid: unchanged
    obj = {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": ["string", "null"]}}}
    wrong = degrade(obj, {"a": True, "b": None}, rng, lambda v: True)
    assert wrong == {"a": False, "b": None}


def test_shorten_keeps_a_share_of_the_words() -> None:
    text = " ".join(f"w{i}" for i in range(20))
    assert shorten(text, 0.5, 1) == text
    assert len(shorten(text, 0.5, PACK_REF).split()) == 10
    assert len(shorten(text, 1.0, PACK_REF).split()) == 1
    assert shorten("one", 1.0, PACK_REF) == "one"


async def test_answer_shortening_on_text_answers() -> None:
    task = load_task("translate")
    engine = make_engine(SimConfig(answer_shortening=0.5))
    pack = [
        Item(i, f"s{i}", "good morning my friend the train leaves every fifteen minutes today")
        for i in range(50)
    ]
    result = await roundtrip(engine, "json", task, pack)
    full = oracle_answer(task.item_schema, result.request.system, pack[0].text)
    for item in pack:
        answer = result.outcomes[item.key].answer
        assert full.startswith(answer) and len(answer.split()) == (len(full.split()) + 1) // 2
    assert engine.stats.faults["shortened"] == 50
    # the sentiment task's answers are objects, not text: never shortened
    sentiment = load_task("sentiment")
    other = await roundtrip(make_engine(SimConfig(answer_shortening=1.0)), "json", sentiment, items(10))
    assert all(o.status == "ok" for o in other.outcomes.values())


def test_cli_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(sim_cli, "serve_forever", lambda *args: calls.append(args))
    args = ["serve", "--pack-accuracy-decay", "0.03", "--answer-shortening", "0.4"]
    result = CliRunner().invoke(sim_cli.sim, args)
    assert result.exit_code == 0, result.output
    assert calls[0][0] == SimConfig(pack_accuracy_decay=0.03, answer_shortening=0.4)
    bad = CliRunner().invoke(sim_cli.sim, ["serve", "--pack-accuracy-decay", "2"])
    assert bad.exit_code == 2


def test_config_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="pack_accuracy_decay"):
        SimConfig(pack_accuracy_decay=-0.1)
    with pytest.raises(ValueError, match="answer_shortening"):
        SimConfig(answer_shortening=1.5)
