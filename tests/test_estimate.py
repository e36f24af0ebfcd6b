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
from llmbatch._jobs.estimate import estimate_job, typical_answer
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
