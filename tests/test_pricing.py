"""Prices as data: the cost model, family fallback, user overrides."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from llmbatch import Price, PriceTable, Usage, UsageError
from llmbatch._pricing import ModelTraits, model_traits


def test_cost_arithmetic() -> None:
    price = Price(input=2.0, output=8.0)
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=500_000)
    assert price.cost(usage) == pytest.approx(2.0 + 4.0)


def test_cached_tokens_at_the_cached_rate() -> None:
    price = Price(input=2.0, output=8.0, cached_input=0.5)
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
    assert price.cost(usage) == pytest.approx((600 * 2.0 + 400 * 0.5 + 100 * 8.0) / 1e6)


def test_cached_tokens_without_a_cached_rate_cost_full_price() -> None:
    price = Price(input=2.0, output=8.0)
    usage = Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=400)
    assert price.cost(usage) == pytest.approx(1000 * 2.0 / 1e6)


def test_cached_tokens_never_exceed_prompt_tokens() -> None:
    price = Price(input=2.0, output=8.0, cached_input=0.0)
    assert price.cost(Usage(prompt_tokens=100, cached_tokens=1000)) == 0.0


def test_batch_multiplier() -> None:
    price = Price(input=1.0, output=2.0, cached_input=0.5, batch=0.5)
    usage = Usage(prompt_tokens=2000, completion_tokens=1000, cached_tokens=1000)
    full = (1000 * 1.0 + 1000 * 0.5 + 1000 * 2.0) / 1e6
    assert price.cost(usage) == pytest.approx(full)
    assert price.cost(usage, batch=True) == pytest.approx(full / 2)


def test_zero_usage_costs_nothing() -> None:
    assert Price(input=1.0, output=1.0).cost(Usage()) == 0.0


# -- the table ---------------------------------------------------------------------------------


def test_shipped_table_loads() -> None:
    table = PriceTable.load()
    price = table.get("gpt-4o-mini")
    assert price == Price(input=0.15, output=0.60, cached_input=0.075, batch=0.5)
    assert table.get("_comment") is None  # comments are not models


def test_every_shipped_entry_is_complete() -> None:
    raw = json.loads(resources.files("llmbatch").joinpath("data/prices.json").read_text())
    table = PriceTable.load()
    for model in raw:
        if model.startswith("_"):
            continue
        price = table.get(model)
        assert price is not None and price.input >= 0 and price.output >= 0 and 0 < price.batch <= 1


@pytest.mark.parametrize("model", ["gpt-5-ultra", "llama-3-70b", "", "gpt", "claude"])
def test_unknown_model_has_no_price(model: str) -> None:
    assert PriceTable.load().get(model) is None


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"),
    ],
)
def test_dated_snapshot_falls_back_to_its_family(model: str, family: str) -> None:
    table = PriceTable.load()
    assert table.get(model) is not None
    assert table.get(model) == table.get(family)


@pytest.mark.parametrize(
    "model", ["gpt-4o-audio-preview", "gpt-4o-mini-tts", "gpt-4.1-mini-finetuned", "sim-1-large"]
)
def test_other_variants_do_not_borrow_a_family_price(model: str) -> None:
    # An unknown cost must stay unknown rather than become a wrong one.
    assert PriceTable.load().get(model) is None


def test_exact_name_wins_over_family() -> None:
    table = PriceTable({"m": Price(1, 1), "m-2024-01-01": Price(5, 5)})
    assert table.get("m-2024-01-01") == Price(5, 5)
    assert table.get("m-2024-02-02") == Price(1, 1)


# -- user overrides ------------------------------------------------------------------------------


def test_user_file_overrides_and_adds(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "_note": "mine",
                "gpt-4o-mini": {"input": 1, "output": 2},
                "my-model": {
                    "input": 0.5,
                    "output": 1.5,
                    "cached_input": 0.1,
                    "cache_write": 0.7,
                    "batch": 0.4,
                },
            }
        ),
        encoding="utf-8",
    )
    table = PriceTable.load(path)
    assert table.get("gpt-4o-mini") == Price(input=1.0, output=2.0)  # replaced whole, not merged
    assert table.get("my-model") == Price(0.5, 1.5, cached_input=0.1, cache_write=0.7, batch=0.4)
    assert table.get("gpt-4o") is not None  # the shipped entries are kept


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "cannot read prices file"),
        ("[1, 2]", "must hold a JSON object"),
        ('"gpt-4o"', "must hold a JSON object"),
        ('{"m": {"input": 1}}', "price entry for 'm' needs numeric input and output"),
        ('{"m": {"input": "cheap", "output": 1}}', "price entry for 'm'"),
        ('{"m": 3}', "price entry for 'm'"),
        ('{"m": {"input": 1, "output": 1, "batch": "half"}}', "price entry for 'm'"),
        ('{"m": {"input": 1, "output": 1, "cached_input": []}}', "price entry for 'm'"),
    ],
)
def test_bad_user_file_is_usage_error(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError) as info:
        PriceTable.load(path)
    assert fragment in str(info.value)


def test_missing_user_file_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read prices file"):
        PriceTable.load(tmp_path / "nope.json")


def test_non_utf8_user_file_is_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_bytes(b'{"caf\xe9": {"input": 1, "output": 1}}')
    with pytest.raises(UsageError, match="cannot read prices file"):
        PriceTable.load(path)


# -- the model table: sources and traits ------------------------------------------------------


def test_every_entry_added_with_a_source_says_when_it_was_checked() -> None:
    raw = json.loads(resources.files("llmbatch").joinpath("data/prices.json").read_text())
    sourced = {
        model: entry for model, entry in raw.items() if not model.startswith("_") and "_source" in entry
    }
    assert {"gpt-5", "gpt-5-mini", "gpt-5-nano", "o3", "o4-mini", "claude-opus-4-5"} <= set(sourced)
    for model, entry in sourced.items():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", entry.get("_checked", "")), model
    # A reasoning model's traits come with a source: they change what is sent, not only the cost.
    for model, entry in raw.items():
        if isinstance(entry, dict) and ("reasoning" in entry or "sampling" in entry):
            assert "_source" in entry, model


def test_notes_and_traits_in_an_entry_are_not_read_as_prices(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    entry = {"input": 1, "output": 2, "_source": "my invoice", "_checked": "2026-12-01", "reasoning": True}
    path.write_text(json.dumps({"_why": "mine", "my-model": entry}), encoding="utf-8")
    assert PriceTable.load(path).get("my-model") == Price(input=1.0, output=2.0)
    assert PriceTable.load().get("gpt-5") == Price(input=1.25, output=10.0, cached_input=0.125, batch=0.5)


def test_traits_fall_back_from_a_dated_snapshot_and_default_for_unknown_models() -> None:
    assert model_traits("o3-2025-04-16") == model_traits("o3") == ModelTraits(reasoning=True, sampling=False)
    assert model_traits("gpt-4o") == ModelTraits() and model_traits("vllm/llama-3") == ModelTraits()
    gated = model_traits("gpt-5.4")
    assert (
        gated.reasoning
        and not gated.takes_sampling({})
        and gated.takes_sampling({"reasoning_effort": "none"})
    )
    assert not model_traits("claude-opus-4-7").takes_sampling({})
