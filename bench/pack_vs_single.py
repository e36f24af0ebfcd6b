"""Packing and parallelism against one request per record (issue 2's acceptance).

500 synthetic product reviews (~40 tokens each) are classified with a task whose
instructions are ~300 tokens (label definitions), against the simulator started as
a separate process with 0.5 s base latency and 10 ms per output token, time-scaled.

    run A: pack 1,  concurrency 1   (one request per record, as most scripts do)
    run B: pack 10, concurrency 8

Targets: B at least 8x faster than A (wall time), and at least 60% fewer input
tokens per record. Prints a table and one PASS/FAIL line per target; exits 0.

    .venv/bin/python bench/pack_vs_single.py [--time-scale 0.2] [--records 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Simulator, print_table, provider_for, reviews, verdict, write_jsonl

from llmbatch._jobs.job import JobSpec, run_job
from llmbatch._options import RunOptions
from llmbatch._pack.tokens import count_tokens
from llmbatch._task import Task

INSTRUCTIONS = """\
You are triaging customer reviews for an online shop's product team. For each review \
(its title and text together), decide which single aspect of the purchase the review is \
mainly about, and the overall sentiment the reviewer expresses.

Topic labels (choose exactly one, the aspect that takes up most of the review):
- "product_quality": build quality, durability, defects, breakage, materials, how well the \
product performs its main function.
- "shipping": delivery time, damaged or missing parcels, packaging, tracking numbers, \
couriers.
- "customer_service": contact with the seller or manufacturer, refunds, returns, \
replacements, warranty claims, answers to emails or calls.
- "price_value": whether the product is worth its price, comparisons with cheaper or more \
expensive products, discounts.
- "usability": setup, assembly, instructions and manuals, apps, controls, ease of cleaning \
and everyday handling.
- "other": anything else, including reviews that only state an opinion without saying why.

Sentiment labels:
- "positive": the reviewer is clearly satisfied and would buy again or recommend it.
- "negative": the reviewer is clearly dissatisfied, regrets the purchase, returned it or \
warns others.
- "neutral": mixed, lukewarm or purely factual reviews, or too early to tell.

Judge only the reviewer's own opinion. When two topics are equally present, prefer the \
one mentioned first."""

OUTPUT = {
    "type": "object",
    "properties": {
        "topic": {
            "type": "string",
            "enum": ["product_quality", "shipping", "customer_service", "price_value", "usability", "other"],
        },
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
    },
    "required": ["topic", "sentiment"],
}

BASE_LATENCY = 0.5
PER_OUTPUT_TOKEN = 0.010


def task() -> Task:
    return Task(
        instructions=INSTRUCTIONS,
        input="{title}: {text}",
        output=OUTPUT,
        id="id",
        name="review-triage",
        answer_tokens=24,
    )


async def one_run(base_url: str, data: Path, options: RunOptions, workdir: Path, name: str) -> dict[str, Any]:
    spec = JobSpec(
        task=task(), input=data, output=None, job_dir=workdir / name, options=options, cache_dir=None
    )
    started = time.perf_counter()
    result = await run_job(spec, provider_for(base_url, timeout=60.0))
    wall = time.perf_counter() - started
    summary = result.metrics.summary()
    return {"wall": wall, "summary": summary, "counts": result.counts}


def run(label: str, sim_flags: list[str], data: Path, options: RunOptions, workdir: Path) -> dict[str, Any]:
    # A fresh simulator per run: its counters and (absent here) rate-limit buckets start clean.
    with Simulator(*sim_flags) as sim:
        out = asyncio.run(one_run(sim.base_url, data, options, workdir, label))
        out["sim"] = sim.stats()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--time-scale", type=float, default=0.2)
    args = parser.parse_args()

    records = reviews(args.records, tokens=(28, 40), seed=2)
    item_tokens = [count_tokens(f"{r['title']}: {r['text']}") for r in records]
    sim_flags = [
        "--base-latency",
        str(BASE_LATENCY),
        "--per-output-token",
        str(PER_OUTPUT_TOKEN),
        "--time-scale",
        str(args.time_scale),
    ]
    print("pack_vs_single: one LLM task over every record, packed and parallel vs one request per record")
    print(
        f"records: {len(records)} reviews, {statistics.mean(item_tokens):.1f} tokens each on average "
        f"(min {min(item_tokens)}, max {max(item_tokens)}); instructions: "
        f"{count_tokens(INSTRUCTIONS)} tokens"
    )
    print(
        f"simulator (separate process): base latency {BASE_LATENCY} s + {PER_OUTPUT_TOKEN * 1000:.0f} ms "
        f"per output token, time scale {args.time_scale} (every latency x{args.time_scale}; "
        f"unscaled times are {1 / args.time_scale:g}x the wall times below)"
    )
    print(f"command: {' '.join(Simulator(*sim_flags).command)}")

    with tempfile.TemporaryDirectory(prefix="llmbatch-bench-") as tmp:
        workdir = Path(tmp)
        data = workdir / "reviews.jsonl"
        write_jsonl(data, records)
        runs = {
            "A": ("pack 1, concurrency 1", RunOptions(batch_size=1, concurrency=1)),
            "B": ("pack 10, concurrency 8", RunOptions(batch_size=10, concurrency=8)),
        }
        results = {}
        for label, (desc, options) in runs.items():
            print(f"\nrun {label} ({desc}) ...", flush=True)
            results[label] = run(label, sim_flags, data, options, workdir)
            r = results[label]
            print(f"  done in {r['wall']:.1f} s: {r['counts']}")

    n = len(records)
    rows = []
    for label, (desc, _) in runs.items():
        r = results[label]
        s = r["summary"]
        rows.append(
            [
                f"{label}: {desc}",
                r["wall"],
                s["elapsed_s"],
                s["items_per_min"],
                s["requests"],
                r["sim"]["requests"],
                s["items_ok"],
                s["prompt_tokens"],
                s["prompt_tokens"] / n,
                s["completion_tokens"],
                s["latency_mean_s"],
            ]
        )
    print_table(
        [
            "run",
            "wall s",
            "run s",
            "items/min",
            "requests",
            "sim requests",
            "items ok",
            "input tokens",
            "input tok/record",
            "output tokens",
            "mean latency s",
        ],
        rows,
        title="results (wall: the whole job incl. ingest; run: the dispatch loop)",
    )

    a, b = results["A"], results["B"]
    speedup = a["wall"] / b["wall"]
    in_a = a["summary"]["prompt_tokens"] / n
    in_b = b["summary"]["prompt_tokens"] / n
    saving = 1 - in_b / in_a
    ratio_rows = [
        ["wall time A / B", speedup, "x faster"],
        [
            "run time A / B (dispatch loop only)",
            a["summary"]["elapsed_s"] / b["summary"]["elapsed_s"],
            "x faster",
        ],
        ["requests A / B", a["summary"]["requests"] / b["summary"]["requests"], "x fewer"],
        ["input tokens per record, B vs A", -saving * 100, "% (negative = fewer)"],
        [
            "output tokens per record, A / B",
            a["summary"]["completion_tokens"] / max(1, b["summary"]["completion_tokens"]),
            "x",
        ],
        [
            "total tokens A / B",
            (a["summary"]["prompt_tokens"] + a["summary"]["completion_tokens"])
            / (b["summary"]["prompt_tokens"] + b["summary"]["completion_tokens"]),
            "x",
        ],
    ]
    print_table(["ratio", "value", ""], ratio_rows, title="ratios")

    all_ok = a["summary"]["items_ok"] == n and b["summary"]["items_ok"] == n
    print()
    print(
        verdict(
            "every record answered in both runs",
            all_ok,
            f"A {a['summary']['items_ok']}/{n}, B {b['summary']['items_ok']}/{n} ok",
        )
    )
    print(
        verdict(
            "B >= 8x faster than A",
            speedup >= 8,
            f"{speedup:.1f}x (wall {a['wall']:.1f} s vs {b['wall']:.1f} s)",
        )
    )
    print(
        verdict(
            "B >= 60% fewer input tokens per record",
            saving >= 0.60,
            f"{saving * 100:.1f}% fewer ({in_a:.1f} vs {in_b:.1f} tokens/record)",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
