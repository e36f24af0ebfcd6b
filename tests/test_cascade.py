"""Model cascade: records the cheap model cannot answer (or answers unsure) go to the next."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

from click.testing import CliRunner

from llmbatch import (
    JobSpec,
    PriceTable,
    ProviderConfig,
    RetryPolicy,
    RunOptions,
    Task,
    create_provider,
    run_job,
)
from llmbatch.cli import main
from llmbatch.providers.base import Provider
from llmbatch.sim import SimConfig

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BASE = Task.from_file(EXAMPLES / "sentiment.toml")


def _factory(broken: str) -> tuple[Provider, object]:
    def provider_for(model: str) -> Provider:
        sim = SimConfig(model=model, corrupt_rate=1.0 if model == broken else 0.0, seed=3)
        return create_provider("sim", ProviderConfig(model=model, extra={"sim": sim}))

    return provider_for("gpt-4o-mini"), provider_for


def _spec(task: Task, tmp_path: Path) -> JobSpec:
    return JobSpec(
        task=task,
        input=EXAMPLES / "reviews.jsonl",
        output=tmp_path / "out.jsonl",
        job_dir=tmp_path / "job",
        options=RunOptions(batch_size=10, policy=RetryPolicy(max_attempts=2)),
        prices=PriceTable.load(),
    )


def test_records_the_cheap_model_cannot_answer_escalate_to_the_next(tmp_path: Path) -> None:
    task = dataclasses.replace(BASE, models=("gpt-4o-mini", "gpt-4o"))
    first, provider_for = _factory(broken="gpt-4o-mini")
    result = asyncio.run(run_job(_spec(task, tmp_path), first, provider_for=provider_for))  # type: ignore[arg-type]

    assert result.counts == {"done": 66}
    by_model = result.metrics.summary()["by_model"]
    assert by_model["gpt-4o-mini"]["records"] == 0  # every answer it gave was invalid
    assert by_model["gpt-4o"]["records"] == 66
    assert by_model["gpt-4o"]["cost"] > 0 and by_model["gpt-4o-mini"]["cost"] > 0  # both are paid


def test_unsure_answers_escalate_by_a_confidence_threshold(tmp_path: Path) -> None:
    task = dataclasses.replace(
        BASE, models=("gpt-4o-mini", "gpt-4o"), escalate_field="confidence", escalate_below=0.8
    )
    first, provider_for = _factory(broken="none")
    result = asyncio.run(run_job(_spec(task, tmp_path), first, provider_for=provider_for))  # type: ignore[arg-type]
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    unsure = sum(row["confidence"] < 0.8 for row in rows)
    by_model = result.metrics.summary()["by_model"]
    assert unsure > 0
    assert by_model["gpt-4o"]["records"] == unsure  # exactly the unsure ones were asked again
    assert by_model["gpt-4o-mini"]["records"] == 66


def test_the_task_file_cascade_through_the_cli_shows_records_per_model(tmp_path: Path) -> None:
    task_file = tmp_path / "cascade.toml"
    text = (EXAMPLES / "sentiment.toml").read_text()
    task_file.write_text(
        'models = ["sim-small", "sim-large"]\n' + text + '\n[escalate]\nfield = "confidence"\nbelow = 0.8\n'
    )
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(EXAMPLES / "reviews.jsonl"),
            "--task",
            str(task_file),
            "--provider",
            "sim",
            "--out",
            str(tmp_path / "o.jsonl"),
            "--job-dir",
            str(tmp_path / "j"),
            "--no-cache",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "model sim-small" in result.output and "model sim-large" in result.output
