"""``tune`` on the in-process simulator: agreement by pack size, the estimate, the saved ceiling, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from llmbatch._exceptions import UsageError
from llmbatch._jobs.tune import (
    SizeResult,
    TuneReport,
    estimate_tune_cost,
    load_tuned_ceiling,
    reservoir_sample,
    sample_records,
    save_tuned,
    tune,
    tuned_path,
)
from llmbatch._options import RunOptions
from llmbatch._pricing import PriceTable
from llmbatch._task import Task
from llmbatch.cli.tune import COMMANDS
from llmbatch.providers import ProviderConfig, create_provider
from llmbatch.sim import SimConfig

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WORDS = ["great", "terrible", "kettle", "fast", "broken", "love", "refund", "fine", "box", "lid", "okay"]


def records(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"r{i:03d}",
            "title": f"Review {i}",
            "text": " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(9)),
        }
        for i in range(count)
    ]


def sim_factory(**knobs: Any) -> Any:
    config = SimConfig(**knobs)
    return lambda: create_provider("sim", ProviderConfig(extra={"sim": config}))


@pytest.fixture
def task() -> Task:
    return Task.from_file(EXAMPLES / "sentiment.toml")


async def test_agreement_falls_with_pack_size(task: Task, tmp_path: Path) -> None:
    report = await tune(
        task,
        records(120),
        sim_factory(seed=3, pack_accuracy_decay=0.25),
        sizes=[5, 40],
        sample=80,
        seed=1,
        prices=PriceTable.load(),
        work_dir=tmp_path / "work",
    )
    assert [s.size for s in report.sizes] == [1, 5, 40]  # the reference is always measured, first
    one, five, forty = report.sizes
    assert one.agreement == 1.0 and one.length_ratio == 1.0 and one.records == 80
    assert five.agreement is not None and forty.agreement is not None
    assert 1.0 >= five.agreement > forty.agreement
    assert forty.agreement < 0.9  # decay 0.25 at 40 items: ~1 in 3 answers changed
    for size in report.sizes:
        assert size.first_try_rate == 1.0  # wrong answers are valid answers: nothing retried
        assert size.ok == 80
    assert one.cost_per_item is not None and forty.cost_per_item is not None
    assert forty.cost_per_item < one.cost_per_item / 2
    assert forty.prompt_tokens_per_item is not None and one.prompt_tokens_per_item is not None
    assert forty.prompt_tokens_per_item < one.prompt_tokens_per_item
    assert report.recommended in (1, 5)
    assert report.cost == pytest.approx(sum(s.cost or 0 for s in report.sizes))


async def test_the_estimate_counts_what_tune_sends(task: Task) -> None:
    data = records(60)
    price = PriceTable.load().get("sim-1")
    estimate = estimate_tune_cost(task, data, sizes=[1, 7, 25], sample=50, seed=2, price=price)
    report = await tune(task, data, sim_factory(), sizes=[7, 25], sample=50, seed=2, prices=PriceTable.load())
    assert estimate.records == 50
    assert estimate.requests == sum(s.requests for s in report.sizes) == 50 + 8 + 2
    prompt = sum((s.prompt_tokens_per_item or 0) * 50 for s in report.sizes)
    assert estimate.prompt_tokens == pytest.approx(prompt)  # the simulator counts as the client does
    assert estimate.cost is not None and report.cost is not None
    assert estimate.cost >= report.cost  # answer budgets are an upper bound


async def test_max_cost_skips_the_sizes_it_cannot_afford(task: Task) -> None:
    data = records(40)
    report = await tune(
        task, data, sim_factory(), sizes=[5, 10], sample=40, prices=PriceTable.load(), max_cost=0.003
    )
    # The one-record answers take ~$0.002 of the $0.003; the packs would take ~$0.0023 more.
    assert [s.size for s in report.sizes] == [1]
    assert report.skipped == [5, 10]
    assert report.cost is not None and report.cost <= 0.003


async def test_recommendation_with_decay_stays_above_the_floor(task: Task) -> None:
    report = await tune(
        task,
        records(200),
        sim_factory(seed=1, pack_accuracy_decay=0.05),
        sizes=[5, 10, 50],
        sample=150,
        options=RunOptions(concurrency=8),
        min_agreement=0.97,
    )
    chosen = report.result(report.recommended)
    assert chosen is not None and chosen.agreement is not None and chosen.agreement >= 0.97
    fifty = report.result(50)
    assert fifty is not None and fifty.agreement is not None and fifty.agreement < 0.97
    assert report.recommended != 50


def test_sample_records_is_seeded_and_in_input_order() -> None:
    data = records(100)
    first = sample_records(data, 10, seed=4)
    assert first == sample_records(data, 10, seed=4)
    assert first != sample_records(data, 10, seed=5)
    assert [r["id"] for r in first] == sorted(r["id"] for r in first)
    assert sample_records(data[:5], 10, seed=0) == data[:5]
    with pytest.raises(UsageError):
        sample_records(data, 0, seed=0)


def test_reservoir_sample() -> None:
    data = records(100)
    chosen = reservoir_sample(iter(data), 10, seed=1)
    assert len(chosen) == 10 and chosen == reservoir_sample(iter(data), 10, seed=1)
    assert [r["id"] for r in chosen] == sorted(r["id"] for r in chosen)
    assert reservoir_sample(iter(data[:3]), 10, seed=1) == data[:3]


def _report(best: int) -> TuneReport:
    row = SizeResult(best, 10, 10, 1.0, 1.0, 10, 1.0, 100.0, 50.0, 5.0, 1e-5, 1e-4, 2, 0.1)
    return TuneReport([row], best, 0.98, 10, 0)


def test_saved_ceiling_applies_to_the_same_task_and_model(task: Task, tmp_path: Path) -> None:
    task_path = tmp_path / "sentiment.toml"
    task_path.write_text((EXAMPLES / "sentiment.toml").read_text())
    assert load_tuned_ceiling(task_path, task) is None  # nothing saved yet
    path = save_tuned(task_path, task, _report(20), model="gpt-4o-mini", endpoint="openai")
    assert path == tuned_path(task_path) == tmp_path / "sentiment.tuned.json"
    saved = json.loads(path.read_text())
    assert saved["task_fingerprint"] == task.fingerprint and saved["max_batch_size"] == 20
    assert saved["measured"]["20"]["agreement"] == 1.0
    assert load_tuned_ceiling(task_path, task) == 20
    assert load_tuned_ceiling(task_path, task, model="gpt-4o-mini") == 20
    assert load_tuned_ceiling(task_path, task, model="gpt-4.1") is None
    changed = Task(instructions=task.instructions + " Be strict.", input=task.input, output=task.item_schema)
    assert load_tuned_ceiling(task_path, changed) is None
    path.write_text("{not json")
    with pytest.raises(UsageError, match="tune --save"):
        load_tuned_ceiling(task_path, task)


def _cli() -> click.Group:
    from llmbatch.cli import _Group

    group = _Group("llmbatch")  # the main group's error handling, without its other commands
    for command in COMMANDS:
        group.add_command(command)
    return group


def test_tune_command(tmp_path: Path) -> None:
    task_path = tmp_path / "sentiment.toml"
    task_path.write_text((EXAMPLES / "sentiment.toml").read_text())
    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records(40)))
    args = [
        "tune",
        str(data),
        "--task",
        str(task_path),
        "--provider",
        "sim",
        "--sizes",
        "5,10",
        "--sample",
        "30",
    ]
    result = CliRunner().invoke(_cli(), [*args, "--save"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "tune: 30 sampled records at sizes 1, 5, 10" in out and "up to $" in out
    assert out.index("up to $") < out.index("size 1:")  # the spend is shown before anything is sent
    assert "◀ best" in out and "recommended:" in out and "tune spent $" in out
    assert (tmp_path / "sentiment.tuned.json").exists()
    task = Task.from_file(task_path)
    assert load_tuned_ceiling(task_path, task, model="sim-1") in (1, 5, 10)

    refused = CliRunner().invoke(_cli(), [*args, "--max-cost", "0.0001"])
    assert refused.exit_code == 2
    assert "more than --max-cost" in refused.output

    bad = CliRunner().invoke(_cli(), [*args[:-4], "--sizes", "0,5"])
    assert bad.exit_code == 2 and "from 1 to 1000" in bad.output
