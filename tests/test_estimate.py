"""``llmbatch estimate``: tokens counted without any API call, checked against real runs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmbatch import JobSpec, PriceTable, ProviderConfig, RunOptions, Task, create_provider, run_job
from llmbatch._io import open_reader
from llmbatch._jobs.estimate import (
    DEFAULT_RPM,
    DEFAULT_TPM,
    StrategyEstimate,
    cheapest_within,
    estimate_job,
    shortest_answer,
    typical_answer,
)
from llmbatch._pack import PACKERS, shared_prefix_tokens
from llmbatch._types import Item
from llmbatch.cli import main
from llmbatch.sim import SimConfig

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(task_file: str, data: str, size: int, tmp_path: Path) -> dict[str, float]:
    spec = JobSpec(
        task=Task.from_file(EXAMPLES / task_file),
        input=EXAMPLES / data,
        output=None,
        job_dir=tmp_path / f"job-{size}",
        options=RunOptions(batch_size=size, shuffle=False),
        prices=PriceTable.load(),
    )
    result = asyncio.run(run_job(spec, create_provider("sim", ProviderConfig())))
    return result.metrics.summary()


@pytest.mark.parametrize(
    ("task_file", "data"),
    [
        ("sentiment.toml", "reviews.jsonl"),
        ("translate.toml", "sentences.jsonl"),
        ("extract.toml", "messages.jsonl"),
    ],
)
@pytest.mark.parametrize("size", [1, 20])
def test_estimate_agrees_with_a_run_within_ten_percent(
    task_file: str, data: str, size: int, tmp_path: Path
) -> None:
    task = Task.from_file(EXAMPLES / task_file)
    price = PriceTable.load().get("sim-1")
    report = estimate_job(task, open_reader(EXAMPLES / data), PACKERS["json"], batch_size=size, price=price)
    predicted = report.strategies[0 if size == 1 else 1]
    actual = _run(task_file, data, size, tmp_path)

    assert predicted.input_tokens == actual["prompt_tokens"]  # same renderer, same count
    total_predicted = predicted.input_tokens + predicted.output_tokens
    total_actual = actual["prompt_tokens"] + actual["completion_tokens"]
    assert abs(total_predicted - total_actual) <= 0.10 * total_actual
    assert predicted.cost is not None and actual["cost_usd"] is not None
    if task_file != "extract.toml":
        # Extraction answers vary in length with what each message holds; the
        # typical-answer model only bounds them, and output costs 4x input.
        assert abs(predicted.cost - actual["cost_usd"]) <= 0.10 * actual["cost_usd"]


def test_packing_and_batch_api_cut_the_estimated_cost() -> None:
    task = Task.from_file(EXAMPLES / "sentiment.toml")
    price = PriceTable.load().get("sim-1")
    report = estimate_job(
        task, open_reader(EXAMPLES / "reviews.jsonl"), PACKERS["json"], batch_size=20, price=price
    )
    single, packed, caching, flex, batch = report.strategies
    assert [s.name for s in report.strategies][2:] == [
        "packed 20 + caching",
        "packed 20 + caching + flex",
        "packed 20 + batch API",
    ]
    assert single.requests == 66 and packed.requests == 4 == flex.requests
    assert packed.cost is not None and single.cost is not None and batch.cost is not None
    assert packed.cost < single.cost / 2
    assert batch.cost == pytest.approx(packed.cost * 0.5)
    # Flex is the batch price with the cache discount on top (none here: a short prefix).
    assert flex.cost is not None and caching.cost is not None
    assert flex.cost == pytest.approx(caching.cost * 0.5) and flex.cost <= batch.cost


def test_sample_is_extrapolated_and_said_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "estimate",
            str(EXAMPLES / "reviews.jsonl"),
            "--task",
            str(EXAMPLES / "sentiment.toml"),
            "--sample",
            "10",
            "--model",
            "sim-1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "extrapolated from the first 10 of 66 records" in result.output
    assert "packed 20 + batch API" in result.output


def test_unknown_model_cost_is_unknown_not_zero() -> None:
    result = CliRunner().invoke(
        main,
        [
            "estimate",
            str(EXAMPLES / "reviews.jsonl"),
            "--task",
            str(EXAMPLES / "sentiment.toml"),
            "--model",
            "no-such-model",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "unknown" in result.output and "$0.0000" not in result.output


def test_typical_answer_is_valid_for_the_example_schemas() -> None:
    for name in ("sentiment.toml", "extract.toml"):
        task = Task.from_file(EXAMPLES / name)
        assert task.validate_answer(typical_answer(task.item_schema)) is None


def test_a_sample_extrapolates_requests_per_pack_not_per_record() -> None:
    task = Task.from_file(EXAMPLES / "sentiment.toml")
    price = PriceTable.load().get("sim-1")
    full = estimate_job(
        task, open_reader(EXAMPLES / "reviews.jsonl"), PACKERS["json"], batch_size=20, price=price
    )
    sampled = estimate_job(
        task, open_reader(EXAMPLES / "reviews.jsonl"), PACKERS["json"], batch_size=20, price=price, sample=30
    )
    assert sampled.extrapolated and sampled.sampled == 30
    for exact, guess in zip(full.strategies, sampled.strategies, strict=True):
        assert guess.requests == exact.requests
        assert abs(guess.input_tokens - exact.input_tokens) <= 0.10 * exact.input_tokens


def test_the_caching_estimate_agrees_with_a_run_against_an_automatic_prompt_cache(tmp_path: Path) -> None:
    # ~1,300 tokens of worked examples: the shared prefix (schema + system) is cacheable.
    base = Task.from_file(EXAMPLES / "sentiment.toml")
    examples = "\n".join(f"Example {i}: 'works as described, no surprises' is neutral." for i in range(90))
    task = dataclasses.replace(base, instructions=f"{base.instructions}\n{examples}")
    price = PriceTable.load().get("sim-1")
    report = estimate_job(
        task, open_reader(EXAMPLES / "reviews.jsonl"), PACKERS["json"], batch_size=5, price=price
    )
    packed, caching = report.strategies[1], report.strategies[2]
    assert caching.cached_tokens > 0.5 * caching.input_tokens
    assert caching.cost is not None and packed.cost is not None and caching.cost < 0.8 * packed.cost

    spec = JobSpec(
        task=task,
        input=EXAMPLES / "reviews.jsonl",
        output=None,
        job_dir=tmp_path / "job",
        options=RunOptions(batch_size=5, shuffle=False),
        prices=PriceTable.load(),
    )
    sim = SimConfig(prompt_caching=True)
    result = asyncio.run(run_job(spec, create_provider("sim", ProviderConfig(extra={"sim": sim}))))
    actual = result.metrics.summary()
    assert actual["prompt_tokens"] == caching.input_tokens
    # The run warms the cache up with one request; the estimate misses once per pack size.
    assert abs(actual["cached_tokens"] - caching.cached_tokens) <= 0.10 * caching.cached_tokens
    assert abs(actual["cost_usd"] - caching.cost) <= 0.10 * actual["cost_usd"]


def test_a_sampled_caching_estimate_misses_once_per_schema_not_once_per_sample(tmp_path: Path) -> None:
    base = Task.from_file(EXAMPLES / "sentiment.toml")
    examples = "\n".join(f"Example {i}: 'works as described, no surprises' is neutral." for i in range(90))
    task = dataclasses.replace(base, instructions=f"{base.instructions}\n{examples}")
    source = tmp_path / "reviews.jsonl"
    rows = [json.dumps({"id": str(i), "title": "Fine", "text": f"review number {i}"}) for i in range(2000)]
    source.write_text("\n".join(rows) + "\n")
    report = estimate_job(task, open_reader(source), PACKERS["json"], batch_size=5, price=None, sample=20)
    caching = report.strategies[2]
    assert caching.requests == 400  # 200 packs rendered from the sample stand for 400
    items = [Item(i, str(i), "review number 1") for i in range(5)]
    per_request = shared_prefix_tokens(PACKERS["json"].render(task, items)) // 128 * 128
    assert per_request >= 1024
    assert caching.cached_tokens == 399 * per_request  # every request but the very first


# -- the plan: a range per strategy, times at the limits, the pick for a deadline -------------


def _plan() -> list[StrategyEstimate]:
    task = Task.from_file(EXAMPLES / "sentiment.toml")
    price = PriceTable.load().get("sim-1")
    reader = open_reader(EXAMPLES / "reviews.jsonl")
    return estimate_job(task, reader, PACKERS["json"], batch_size=20, price=price).strategies


def test_every_strategy_has_a_range_around_its_expected_cost() -> None:
    strategies = _plan()
    for s in strategies:
        assert s.low is not None and s.cost is not None and s.high is not None
        assert s.low <= s.cost < s.high, s.name
    by_mode = {s.mode: s for s in strategies[1:]}
    assert set(by_mode) == {"sync", "flex", "batch"}
    # Flex's worst case is every record at the full price (its stragglers fall back to sync);
    # a batch's is still the batch price.
    packed = strategies[1]
    assert by_mode["flex"].high == pytest.approx(packed.high)
    assert by_mode["batch"].high == pytest.approx((packed.high or 0) / 2)


def test_times_follow_the_limits_and_the_way_of_sending() -> None:
    single, packed, _, flex, batch = _plan()
    # At 10 requests a minute the 66 single requests take 6.6 minutes, the 4 packs 0.4.
    assert single.times(10, None)[0] == pytest.approx(6.6)
    assert packed.times(10, None) == pytest.approx((0.4, 0.5))
    assert flex.times(10, None)[1] > flex.times(10, None)[0] > packed.times(10, None)[0]
    assert batch.times(10, None) == (60.0, 24 * 60.0)  # most within an hour, the 24-hour window
    # With no limit given the defaults apply (500 RPM, 200k TPM).
    assert packed.times(None, None) == packed.times(DEFAULT_RPM, DEFAULT_TPM)


def test_the_deadline_picks_the_cheapest_strategy_that_surely_meets_it() -> None:
    strategies = _plan()
    names = {s.name: s for s in strategies}
    assert cheapest_within(strategies, 8 * 60, None, None) is names["packed 20 + caching + flex"]
    # Only sync is surely done in a minute at 10 RPM: packed, not one request per record.
    assert cheapest_within(strategies, 1.0, 10, None) is names["packed 20"]
    assert cheapest_within(strategies, 0.01, 10, None) is None


def test_estimate_deadline_prints_the_command_and_json_carries_the_plan(tmp_path: Path) -> None:
    args = ["estimate", str(EXAMPLES / "reviews.jsonl"), "--task", str(EXAMPLES / "sentiment.toml")]
    result = CliRunner().invoke(main, [*args, "--model", "sim-1", "--deadline", "8h"])
    assert result.exit_code == 0, result.output
    assert "cheapest within 8.0 h: packed 20 + caching + flex" in result.output
    assert "--batch-size 20 --mode flex" in result.output
    assert "times at 500 RPM / 200k TPM" in result.output  # the assumed limits are said
    plan = CliRunner().invoke(main, [*args, "--model", "sim-1", "--deadline", "5m", "--rpm", "10", "--json"])
    assert plan.exit_code == 0, plan.output
    data = json.loads(plan.output)
    assert data["chosen"]["name"] == "packed 20" and data["limits"] == {
        "rpm": 10.0,
        "tpm": None,
        "assumed": False,
    }
    first = data["strategies"][0]
    assert first["cost_usd"]["low"] <= first["cost_usd"]["expected"] <= first["cost_usd"]["high"]
    assert first["command"].startswith("llmbatch run ") and "--batch-size 1" in first["command"]
    # No strategy can meet it: said in one line, exit 1 (and null in the JSON).
    none = CliRunner().invoke(main, [*args, "--model", "sim-1", "--deadline", "1s", "--rpm", "1"])
    assert none.exit_code == 1 and "no strategy is sure to finish within 1 s" in none.output
    assert "Traceback" not in none.output
    bad = CliRunner().invoke(main, [*args, "--deadline", "soon"])
    assert bad.exit_code == 2 and "--deadline" in bad.output


def test_the_shortest_answer_is_valid_and_no_longer_than_the_typical_one() -> None:
    for name in ("sentiment.toml", "extract.toml"):
        task = Task.from_file(EXAMPLES / name)
        shortest, typical = shortest_answer(task.item_schema), typical_answer(task.item_schema)
        assert task.validate_answer(shortest) is None
        assert len(json.dumps(shortest)) <= len(json.dumps(typical))


def test_a_cascade_task_gets_a_row_priced_through_its_models(tmp_path: Path) -> None:
    base = (EXAMPLES / "sentiment.toml").read_text()
    task_file = tmp_path / "cascade.toml"
    task_file.write_text('models = ["gpt-4o-mini", "gpt-4o"]\n' + base)
    task = Task.from_file(task_file)
    table = PriceTable.load()
    mini, big = table.get("gpt-4o-mini"), table.get("gpt-4o")
    reader = open_reader(EXAMPLES / "reviews.jsonl")
    report = estimate_job(
        task, reader, PACKERS["json"], batch_size=20, price=mini, cascade=[mini, big], escalation=0.1
    )
    packed, row = report.strategies[1], report.strategies[-1]
    assert row.name == "packed 20, cascade gpt-4o-mini → gpt-4o" and row.cascade
    assert packed.cost is not None and row.cost is not None and row.high is not None
    # Every record through the small model, a tenth of them through the big one as well.
    big_alone = estimate_job(
        task, open_reader(EXAMPLES / "reviews.jsonl"), PACKERS["json"], batch_size=20, price=big
    )
    assert row.cost == pytest.approx(packed.cost + 0.1 * (big_alone.strategies[1].cost or 0))
    assert row.low == packed.low and row.high == pytest.approx(
        (packed.high or 0) + (big_alone.strategies[1].high or 0)
    )
    # Its command runs the task's own models: no --model.
    result = CliRunner().invoke(
        main, ["estimate", str(EXAMPLES / "reviews.jsonl"), "--task", str(task_file), "--json"]
    )
    assert result.exit_code == 0, result.output
    cascade = json.loads(result.output)["strategies"][-1]
    assert "--model" not in cascade["command"] and cascade["cost_usd"]["expected"] == pytest.approx(row.cost)


# -- --pilot: a small real run narrows the range -------------------------------------------------


def test_a_pilot_measures_answers_and_narrows_the_range_around_the_run(tmp_path: Path) -> None:
    from _e2e_helpers import review_records, write_jsonl
    from llmbatch._jobs.pilot import apply_pilot, run_pilot

    task = Task.from_file(EXAMPLES / "sentiment.toml")
    table = PriceTable.load()
    price = table.get("sim-1")
    records = review_records(300, seed=21)
    data = write_jsonl(tmp_path / "reviews.jsonl", records)
    # The first 100 records in packs of 20, as `estimate --pilot 100` sends them.
    pilot = asyncio.run(
        run_pilot(task, records[:100], create_provider("sim", ProviderConfig()), batch_size=20, prices=table)
    )
    assert (pilot.records, pilot.requests, pilot.sent, len(pilot.answer_tokens)) == (100, 5, 100, 5)
    assert pilot.resent == 0.0 and pilot.cost is not None and pilot.cost > 0
    plan = estimate_job(task, open_reader(data), PACKERS["json"], batch_size=20, price=price)
    piloted = apply_pilot(plan, pilot, price)
    spec = JobSpec(
        task=task,
        input=data,
        output=None,
        job_dir=tmp_path / "job",
        options=RunOptions(batch_size=20, shuffle=False),
        prices=table,
    )
    actual = asyncio.run(run_job(spec, create_provider("sim", ProviderConfig()))).metrics.summary()[
        "cost_usd"
    ]
    before, after = plan.strategies[1], piloted.strategies[1]
    assert after.low is not None and after.high is not None and after.cost is not None
    assert (after.high - after.low) < ((before.high or 0) - (before.low or 0))  # narrower
    assert after.low <= actual <= after.high
    assert abs(after.cost - actual) <= 0.05 * actual


def test_estimate_pilot_from_the_cli_says_what_it_measured_and_what_it_cost() -> None:
    args = ["estimate", str(EXAMPLES / "reviews.jsonl"), "--task", str(EXAMPLES / "sentiment.toml")]
    result = CliRunner().invoke(
        main, [*args, "--model", "sim-1", "--pilot", "30", "--provider", "sim", "--json"]
    )
    assert result.exit_code == 0, result.output
    pilot = json.loads(result.output)["pilot"]
    assert pilot["records"] == 30 and pilot["cost_usd"] > 0 and pilot["output_tokens_per_record"]["mean"] > 0
    lonely = CliRunner().invoke(main, [*args, "--provider", "sim"])
    assert lonely.exit_code == 2 and "are for --pilot" in lonely.output
