"""Answers as good packed as alone (issue 7's acceptance, bench/quality.py).

1,000 synthetic product reviews are triaged (topic + sentiment, ~300 tokens of
instructions) against the simulator, started as a separate process with its
quality model on:

    llmbatch sim serve --pack-accuracy-decay 0.02 ...

so an item's answer is wrong (but schema-valid) with probability
0.02 × (b − 1)/49 × (1 + 4x(1 − x)) in a pack of b at relative position x: ~3.3%
of the answers of a 50-item pack, ~1.3% at 20, ~0.6% at 10, ~0.25% at 5, never
alone. Runs, each over all records, scored against the simulator's oracle
(``llmbatch.sim.oracle_answer``):

    pack 1          one record per request: the reference quality, and its cost
    pack 50         the cheapest fixed size
    tuned           ``tune`` on a 400-record sample (sizes 1,5,10,20,50), then the
                    recommended size; tune's own spend is reported separately
    pack 50, votes 3   permutation voting over pack 50 (early stopping)

The tune floor is 0.995 — half of the one-point target — as the user's margin
against sampling noise: 400 records cannot tell a 0.6% loss from a 1.3% one
reliably. Even so the recommendation is a noisy choice: over simulator seeds 1–8
the tuned-size target held for 7 (seed 6 picked pack 20, whose 1.3% expected loss
measured under 0.5% on its sample); voting held for all 8.

Targets: tuned within 1 point of pack 1's accuracy at ≤ 40% of its cost per
record; voting at pack 50 recovers at least half the accuracy lost at pack 50;
its extra cost is reported. Prints tables and one PASS/FAIL line per target;
always exits 0.

    .venv/bin/python bench/quality.py [--records 1000] [--decay 0.02] [--seed 1] [--time-scale 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _common import Simulator, pct, print_table, provider_for, reviews, verdict, write_jsonl
from pack_vs_single import task as triage_task

from llmbatch._jobs.job import JobSpec, run_job
from llmbatch._jobs.tune import tune
from llmbatch._jobs.vote import vote
from llmbatch._options import RunOptions
from llmbatch._pack import PACKERS
from llmbatch._pricing import PriceTable
from llmbatch._store.job import JobStore
from llmbatch._task import Task
from llmbatch._types import IdValue
from llmbatch.sim import oracle_answer

BASE_LATENCY = 0.4
PER_OUTPUT_TOKEN = 0.004
CONCURRENCY = 16
SIZES = (1, 5, 10, 20, 50)
TUNE_SAMPLE = 400
MIN_AGREEMENT = 0.995


def expected_answers(task: Task, records: list[dict[str, Any]]) -> dict[str, Any]:
    system = PACKERS["json"].system_prompt(task)
    return {r["id"]: oracle_answer(task.item_schema, system, task.render_input(r)) for r in records}


def accuracy(answers: Mapping[IdValue, Any], expected: Mapping[str, Any]) -> float:
    right: int = sum(answers.get(key) == value for key, value in expected.items())
    return right / len(expected)


def stored_answers(job_dir: Path) -> dict[IdValue, Any]:
    store = JobStore.open(job_dir, readonly=True)
    try:
        return {r.id: r.answer for r in store.results() if r.status == "ok"}
    finally:
        store.close()


async def fixed_run(base_url: str, task: Task, data: Path, size: int, workdir: Path) -> dict[str, Any]:
    spec = JobSpec(
        task=task,
        input=data,
        output=None,
        job_dir=workdir / f"pack-{size}",
        options=RunOptions(batch_size=size, concurrency=CONCURRENCY, seed=1),
        prices=PriceTable.load(),
        cache_dir=None,
    )
    started = time.perf_counter()
    result = await run_job(spec, provider_for(base_url))
    wall = time.perf_counter() - started
    summary = result.metrics.summary()
    return {
        "answers": stored_answers(spec.job_dir),
        "cost": summary["cost_usd"],
        "requests": summary["requests"],
        "wall": wall,
    }


async def voted_run(
    base_url: str, task: Task, data: Path, size: int, votes: int, workdir: Path
) -> dict[str, Any]:
    out = workdir / f"votes-{size}.jsonl"
    started = time.perf_counter()
    report = await vote(
        task,
        data,
        out,
        lambda: provider_for(base_url),
        votes=votes,
        options=RunOptions(batch_size=size, concurrency=CONCURRENCY, seed=1),
        job_root=workdir / f"votes-{size}",
        prices=PriceTable.load(),
    )
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    answers = {
        row["id"]: {key: row[key] for key in task.item_schema["properties"]}
        for row in rows
        if row["status"] == "ok"
    }
    return {
        "answers": answers,
        "cost": report.cost,
        "extra_cost": report.extra_cost,
        "requests": report.requests,
        "extra_requests": report.extra_requests,
        "settled_early": report.settled_early,
        "passes": [p.records for p in report.passes],
        "wall": wall,
    }


async def tuned_size(base_url: str, task: Task, records: list[dict[str, Any]], workdir: Path) -> Any:
    return await tune(
        task,
        records,
        lambda: provider_for(base_url),
        sizes=SIZES,
        sample=TUNE_SAMPLE,
        seed=1,
        min_agreement=MIN_AGREEMENT,
        options=RunOptions(concurrency=CONCURRENCY, seed=1),
        prices=PriceTable.load(),
        work_dir=workdir / "tune",
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--decay", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=1, help="The simulator's seed (its quality draws).")
    parser.add_argument("--time-scale", type=float, default=0.2)
    args = parser.parse_args()

    task = triage_task()
    records = reviews(args.records, tokens=(28, 48), seed=7)
    expected = expected_answers(task, records)
    sim_flags = [
        "--pack-accuracy-decay", str(args.decay), "--seed", str(args.seed),
        "--base-latency", str(BASE_LATENCY), "--per-output-token", str(PER_OUTPUT_TOKEN),
        "--time-scale", str(args.time_scale),
    ]  # fmt: skip
    print("quality: accuracy against the oracle, packed vs alone, tuned, and voted")
    print(f"records: {len(records)} reviews; task: {task.name} (topic + sentiment enums)")
    print(f"simulator (separate process): {' '.join(Simulator(*sim_flags).command)}")
    print(
        "prices: sim-1 at gpt-4o-mini's ($0.15 / $0.60 per million tokens in / out); "
        f"concurrency {CONCURRENCY}"
    )

    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="llmbatch-bench-") as tmp, Simulator(*sim_flags) as sim:
        workdir = Path(tmp)
        data = workdir / "reviews.jsonl"
        write_jsonl(data, records)

        print(
            f"\ntune (sample {TUNE_SAMPLE}, sizes {', '.join(map(str, SIZES))}, floor {MIN_AGREEMENT}) ...",
            flush=True,
        )
        started = time.perf_counter()
        report = asyncio.run(tuned_size(sim.base_url, task, records, workdir))
        tune_wall = time.perf_counter() - started
        print_table(
            ["size", "first try", "agreement", "items/min", "in tok/item", "cost/item $"],
            [
                [
                    s.size,
                    pct(s.first_try_rate),
                    pct(s.agreement),
                    s.items_per_min,
                    s.prompt_tokens_per_item,
                    s.cost_per_item,
                ]
                for s in report.sizes
            ],
            title=f"tune: recommended {report.recommended} ({tune_wall:.1f} s, spent ${report.cost:.4f})",
        )
        best = report.recommended

        plan = [
            ("pack 1", 1, 1),
            ("pack 50", 50, 1),
            (f"tuned (pack {best})", best, 1),
            ("pack 50, votes 3", 50, 3),
        ]
        for label, size, votes in plan:
            print(f"\nrun {label} ...", flush=True)
            if votes == 1:
                runs[label] = asyncio.run(fixed_run(sim.base_url, task, data, size, workdir))
            else:
                runs[label] = asyncio.run(voted_run(sim.base_url, task, data, size, votes, workdir))
            print(f"  done in {runs[label]['wall']:.1f} s", flush=True)

    n = len(records)
    rows = []
    for label, r in runs.items():
        r["accuracy"] = accuracy(r["answers"], expected)
        r["per_record"] = r["cost"] / n
        rows.append(
            [label, pct(r["accuracy"]), r["per_record"] * 1000, r["requests"], n / r["wall"] * 60, r["wall"]]
        )
    print_table(
        ["run", "accuracy", "$ per 1k records", "requests", "items/min", "wall s"],
        rows,
        title=f"results ({n} records; time scale {args.time_scale}: "
        f"unscaled times are {1 / args.time_scale:g}x)",
    )

    one, fifty, tuned, voted = (runs[label] for label, *_ in plan)
    loss_50 = one["accuracy"] - fifty["accuracy"]
    recovered = voted["accuracy"] - fifty["accuracy"]
    share = recovered / loss_50 if loss_50 > 0 else 1.0
    cost_ratio = tuned["per_record"] / one["per_record"]
    print(
        f"\nvoting: passes answered {voted['passes']} records; "
        f"{voted['settled_early']} settled after 2 votes; "
        f"{voted['extra_requests']} extra requests, extra cost ${voted['extra_cost']:.4f} "
        f"(${voted['extra_cost'] / n * 1000:.4f} per 1k records; the whole voted run costs "
        f"{voted['per_record'] / fifty['per_record']:.2f}x pack 50 and "
        f"{voted['per_record'] / one['per_record']:.2f}x pack 1)"
    )
    print(
        f"tune spent ${report.cost:.4f}, as much as {report.cost / one['per_record']:.0f} records at pack 1 "
        f"(it pays for itself after ~{report.cost / (one['per_record'] - tuned['per_record']):.0f} records)"
    )
    print()
    print(
        verdict(
            "tuned within 1 point of pack 1 at <= 40% of its cost per record",
            tuned["accuracy"] >= one["accuracy"] - 0.01 and cost_ratio <= 0.40,
            f"pack {best}: {pct(tuned['accuracy'])} vs {pct(one['accuracy'])}, "
            f"{cost_ratio * 100:.1f}% of pack 1's cost per record",
        )
    )
    print(
        verdict(
            "votes 3 at pack 50 recovers >= half the accuracy lost at pack 50",
            share >= 0.5,
            f"lost {loss_50 * 100:.1f} points at pack 50, voting recovered {recovered * 100:.1f} "
            f"({share * 100:.0f}%): {pct(voted['accuracy'])}",
        )
    )
    print(
        f"INFO  extra cost of voting: ${voted['extra_cost']:.4f} ({voted['extra_requests']} extra requests)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
