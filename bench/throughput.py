"""Throughput at the provider's limit (issue 4's acceptance, bench/throughput.py).

5,000 short reviews are classified against the simulator, started as a separate
process (a fresh one per run, so every run starts on a fresh quota) with RPM and
TPM limits and a latency that grows with input and output tokens:

    latency = (0.8 s + 0.2 ms per prompt token + 15 ms per answer token) x time scale

The time scale shrinks latency only: the simulator's rate limits are per minute of
real time. Runs (every one with the limits also given to the client, as users run it):

    (a)  one request per record, sequentially (batch 1, concurrency 1), on a subset
    (b)  one request per record, concurrency 64 (enough to saturate the RPM), on a subset
    (c)  fixed packs of 5, 10, 20, 50, concurrency 64
    (d)  auto pack size (start 5, up to 50), concurrency cap 64
    (e)  like (d), but the client is not told the limits and learns them from headers

Analytic bound (issue 4): items/min <= min(RPM*b, TPM*b/tokens per request, C*b*60/L(b)),
with tokens per request as the simulator charges them (prompt + max_tokens, no refund),
L(b) the run's mean latency and C the concurrency cap. That is a steady-state rate;
a provider's bucket, and the simulator's, starts full (a minute's allowance), and a run
of under two minutes necessarily spends a third or more of its volume from that
initial allowance. So each run is judged against the bound *for this run*: the least
time N records can take from full buckets,

    T >= max(ceil(n/C)*L,  60*(n - RPM)/RPM + L,  60*(U - TPM)/TPM + L)

(n requests, U tokens charged), which tends to the steady formula for long runs. The
steady rate (items finished in the second half of the run) is shown against the
steady formula as well.

(a) and (b) run on subsets: at these limits (b) alone would take over seven minutes for
5,000 records, and no choice of limits lets (b) finish 5,000 records in two minutes
while the packed runs are still bound by the TPM limit (the initial allowance would
swallow them whole). Their items/min for 5,000 records are extrapolated, and the
table says how. The simulator's 429 counts come from GET /sim/stats, the client's
from Metrics.summary()["rate_limited"].

Prints tables and one PASS/FAIL line per acceptance target; always exits 0.

    .venv/bin/python bench/throughput.py [--time-scale 0.25] [--only c50,d]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import Simulator, pct, print_table, provider_for, reviews, verdict, write_jsonl

from llmbatch._jobs.job import JobSpec, run_job
from llmbatch._options import RunOptions
from llmbatch._pack import PER_ITEM_OVERHEAD
from llmbatch._pack.tokens import count_tokens
from llmbatch._task import Task

INSTRUCTIONS = (
    "Classify the overall sentiment of each product review: positive if the reviewer is "
    "satisfied, negative if dissatisfied, neutral if mixed or purely factual."
)
OUTPUT = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["positive", "negative", "neutral"]}},
    "required": ["label"],
}
ANSWER_TOKENS = 8

RPM = 600
TPM = 250_000
CONCURRENCY = 64
BASE_LATENCY = 0.8
PER_INPUT_TOKEN = 0.0002
PER_OUTPUT_TOKEN = 0.015


def task() -> Task:
    return Task(
        instructions=INSTRUCTIONS,
        input="{title}: {text}",
        output=OUTPUT,
        id="id",
        name="sentiment",
        answer_tokens=ANSWER_TOKENS,
    )


@dataclass
class Plan:
    key: str
    label: str
    records: int
    options: RunOptions
    note: str = ""


@dataclass
class Outcome:
    plan: Plan
    wall: float
    summary: dict[str, Any]
    counts: dict[str, int]
    sim: dict[str, Any]
    pack_sizes: dict[int, int]
    finished: list[tuple[float, int]] = field(default_factory=list)
    """(finish time relative to the first request, items ok) of every successful request."""
    elapsed: float = 0.0
    size_history: list[tuple[float, int]] = field(default_factory=list)


# -- running -----------------------------------------------------------------------------


async def _job(base_url: str, data: Path, options: RunOptions, job_dir: Path) -> Any:
    spec = JobSpec(task=task(), input=data, output=None, job_dir=job_dir, options=options, cache_dir=None)
    return await run_job(spec, provider_for(base_url, timeout=60.0))


def run(plan: Plan, sim_flags: list[str], data: Path, workdir: Path) -> Outcome:
    job_dir = workdir / plan.key
    with Simulator(*sim_flags) as sim:
        started = time.perf_counter()
        result = asyncio.run(_job(sim.base_url, data, plan.options, job_dir))
        wall = time.perf_counter() - started
        stats = sim.stats()
    metrics = result.metrics
    out = Outcome(
        plan=plan,
        wall=wall,
        summary=metrics.summary(),
        counts=result.counts,
        sim=stats,
        pack_sizes=dict(metrics.pack_sizes),
        elapsed=metrics.elapsed,
    )
    db = sqlite3.connect(f"file:{job_dir / 'job.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT started, finished, items_ok FROM requests WHERE status = 'ok'").fetchall()
        first = db.execute("SELECT MIN(started) FROM requests").fetchone()[0]
    finally:
        db.close()
    if rows:
        out.finished = sorted((f - first, ok) for _, f, ok in rows)
    return out


# -- analysis ------------------------------------------------------------------------------


def charged_tokens(o: Outcome) -> float:
    """Tokens the simulator charged in total: prompt + max_tokens of every admitted request."""
    max_tokens = sum(
        n * (size * (ANSWER_TOKENS + PER_ITEM_OVERHEAD) + 16) for size, n in o.pack_sizes.items()
    )
    return float(o.summary["prompt_tokens"] + max_tokens)


def bounds(o: Outcome, items: int | None = None) -> dict[str, Any]:
    """Steady and this-run bounds for an outcome (``items`` extrapolates the run to more records)."""
    s = o.summary
    n_ok = max(1, s["requests_ok"])
    done = s["items_ok"]
    items = items or done
    scale = items / max(1, done)
    n = n_ok * scale
    tpr = charged_tokens(o) / n_ok
    b = done / n_ok
    latency = s["latency_mean_s"] or 0.0
    cap = o.plan.options.concurrency
    rpm, tpm = RPM, TPM
    steady_terms = {
        "RPM": rpm * b,
        "TPM": tpm * b / tpr,
        "concurrency": cap * b * 60 / latency if latency else math.inf,
    }
    t_terms = {
        "RPM": 60 * max(0.0, n - rpm) / rpm + latency,
        "TPM": 60 * max(0.0, n * tpr - tpm) / tpm + latency,
        "concurrency": math.ceil(n / cap) * latency,
    }
    t_min = max(t_terms.values())
    return {
        "b": b,
        "tpr": tpr,
        "latency": latency,
        "steady": min(steady_terms.values()),
        "steady_term": min(steady_terms, key=steady_terms.__getitem__),
        "run": items * 60 / t_min,
        "run_term": max(t_terms, key=t_terms.__getitem__),
        "t_min": t_min,
    }


def steady_rate(o: Outcome) -> float | None:
    """Items per minute finished in the second half of the run (after the initial allowance)."""
    if len(o.finished) < 4:
        return None
    end = o.finished[-1][0]
    half = end / 2
    items = sum(ok for t, ok in o.finished if t > half)
    return items / (end - half) * 60 if end > half else None


def extrapolate(o: Outcome, total: int) -> tuple[float, float, str]:
    """(items/min, seconds, method) for ``total`` records, from a run on a subset.

    - bound by latency alone (sequential): no initial allowance to spend, so the
      whole-run rate is the rate at any length;
    - bound by a rate limit, having used well over the initial allowance (1.5x): the
      subset's time, then the remaining records at the rate of its second half;
    - otherwise (the subset fitted in the initial allowance): its ratio to its own
      bound, applied to the bound for ``total`` records.
    """
    done = o.summary["items_ok"]
    bd = bounds(o)
    if bd["run_term"] == "concurrency" and bounds(o, items=total)["run_term"] == "concurrency":
        rate = o.summary["items_per_min"]
        return rate, total / rate * 60, "whole-run rate"
    used = {"RPM": o.summary["requests_ok"] / RPM, "TPM": charged_tokens(o) / TPM}
    steady = steady_rate(o)
    if bd["run_term"] in used and used[bd["run_term"]] >= 1.5 and steady:
        seconds = o.elapsed + (total - done) / steady * 60
        return total / seconds * 60, seconds, "then steady rate"
    rate = o.summary["items_per_min"] / bd["run"] * bounds(o, items=total)["run"]
    return rate, total / rate * 60, "ratio x bound"


def share_429(o: Outcome) -> float:
    return float(o.sim.get("rate_limited", 0)) / max(1, int(o.sim.get("requests", 0)))


# -- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--sequential-records", type=int, default=200, help="subset for run (a)")
    parser.add_argument("--single-records", type=int, default=1200, help="subset for run (b)")
    parser.add_argument("--time-scale", type=float, default=0.25)
    parser.add_argument("--only", default="", help="comma-separated run keys (a,b,c5,c10,c20,c50,d,e)")
    parser.add_argument("--no-headers-run", action="store_true", help="skip the optional run (e)")
    args = parser.parse_args()

    total = args.records
    records = reviews(total, tokens=(10, 19), seed=4)
    item_tokens = [count_tokens(f"{r['title']}: {r['text']}") for r in records]
    sim_flags = [
        "--base-latency",
        str(BASE_LATENCY),
        "--per-input-token",
        str(PER_INPUT_TOKEN),
        "--per-output-token",
        str(PER_OUTPUT_TOKEN),
        "--time-scale",
        str(args.time_scale),
        "--rate-limit-rpm",
        str(RPM),
        "--rate-limit-tpm",
        str(TPM),
    ]
    plans = [
        Plan(
            "a",
            "(a) batch 1, sequential",
            args.sequential_records,
            RunOptions(batch_size=1, concurrency=1, rpm=RPM, tpm=TPM),
        ),
        Plan(
            "b",
            f"(b) batch 1, conc {CONCURRENCY}",
            args.single_records,
            RunOptions(batch_size=1, concurrency=CONCURRENCY, rpm=RPM, tpm=TPM),
        ),
        *[
            Plan(
                f"c{b}",
                f"(c) pack {b}",
                total,
                RunOptions(batch_size=b, concurrency=CONCURRENCY, rpm=RPM, tpm=TPM),
            )
            for b in (5, 10, 20, 50)
        ],
        Plan(
            "d",
            "(d) auto (<=50)",
            total,
            RunOptions(batch_size=None, max_batch_size=50, concurrency=CONCURRENCY, rpm=RPM, tpm=TPM),
        ),
        Plan(
            "e",
            "(e) auto, limits from headers",
            total,
            RunOptions(batch_size=None, max_batch_size=50, concurrency=CONCURRENCY),
        ),
    ]
    if args.no_headers_run:
        plans = [p for p in plans if p.key != "e"]
    if args.only:
        keep = set(args.only.split(","))
        plans = [p for p in plans if p.key in keep]

    print("throughput: items/min at the provider's limit")
    print(
        f"records: {total} short reviews, {statistics.mean(item_tokens):.1f} tokens each on average; "
        f"task: sentiment label, instructions {count_tokens(INSTRUCTIONS)} tokens, answer budget "
        f"{ANSWER_TOKENS} tokens/item"
    )
    print(
        f"simulator (separate process, a fresh one per run): RPM {RPM}, TPM {TPM:,} (per real minute); "
        f"latency ({BASE_LATENCY} s + {PER_INPUT_TOKEN * 1000:g} ms/prompt token + "
        f"{PER_OUTPUT_TOKEN * 1000:g} ms/answer token) x time scale {args.time_scale}"
    )
    print(f"command: {' '.join(Simulator(*sim_flags).command)}")
    print(f"client: RunOptions(rpm={RPM}, tpm={TPM}, concurrency={CONCURRENCY}) unless noted; no cache")

    outcomes: dict[str, Outcome] = {}
    script_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmbatch-bench-") as tmp:
        workdir = Path(tmp)
        files: dict[int, Path] = {}
        for plan in plans:
            if plan.records not in files:
                files[plan.records] = workdir / f"reviews-{plan.records}.jsonl"
                write_jsonl(files[plan.records], records[: plan.records])
            print(f"\nrun {plan.label} on {plan.records} records ...", flush=True)
            o = run(plan, sim_flags, files[plan.records], workdir)
            outcomes[plan.key] = o
            s = o.summary
            print(
                f"  {o.elapsed:.1f} s, {s['items_per_min']:,.0f} items/min, {s['requests']} requests "
                f"({o.sim['rate_limited']} answered 429), mean pack {s['mean_pack_size']:.1f}, {o.counts}"
            )
    print(f"\nall runs took {time.perf_counter() - script_started:.0f} s")
    report(outcomes, total, args.time_scale)
    return 0


def report(outcomes: dict[str, Outcome], total: int, time_scale: float) -> None:
    a = outcomes.get("a")
    base_rate = a.summary["items_per_min"] if a else None

    speed_rows = []
    for key, o in outcomes.items():
        s = o.summary
        bd = bounds(o)
        steady = steady_rate(o)
        speed_rows.append(
            [
                o.plan.label,
                o.plan.records,
                bd["b"],
                o.elapsed,
                s["items_per_min"],
                bd["run"],
                pct(s["items_per_min"] / bd["run"]),
                bd["run_term"],
                steady,
                bd["steady"],
                pct(None if steady is None else steady / bd["steady"]),
                bd["steady_term"],
            ]
        )
        if key in ("a", "b") and o.plan.records < total:
            rate, seconds, method = extrapolate(o, total)
            bx = bounds(o, items=total)
            speed_rows.append(
                [
                    f"{o.plan.label}: extrapolated ({method})",
                    total,
                    bx["b"],
                    seconds,
                    rate,
                    bx["run"],
                    pct(rate / bx["run"]),
                    bx["run_term"],
                    None,
                    None,
                    None,
                    "",
                ]
            )
    print_table(
        [
            "run",
            "records",
            "mean b",
            "run s",
            "items/min",
            "bound (run)",
            "ratio",
            "binds",
            "steady/min",
            "bound (steady)",
            "ratio",
            "binds",
        ],
        speed_rows,
        title="speed against the analytic bound ('run': from full buckets, this run's length; "
        "'steady': the issue's formula vs the rate in the second half of the run)",
    )

    cost_rows = []
    for key, o in outcomes.items():
        s = o.summary
        bd = bounds(o)
        items = max(1, s["items_ok"])
        rate = s["items_per_min"]
        if key in ("a", "b") and o.plan.records < total:
            rate = extrapolate(o, total)[0]
        cost_rows.append(
            [
                o.plan.label,
                s["requests"],
                o.sim["requests"],
                o.sim["rate_limited"],
                s["rate_limited"],
                f"{share_429(o) * 100:.2f}%",
                (s["prompt_tokens"] + s["completion_tokens"]) / items,
                charged_tokens(o) / items,
                bd["tpr"],
                bd["latency"],
                s["items_ok"],
                s["items_failed"],
                None if base_rate is None else f"{rate / base_rate:.1f}x",
            ]
        )
    print_table(
        [
            "run",
            "requests",
            "sim requests",
            "429 (sim)",
            "429 (client)",
            "429 share",
            "tokens/item",
            "charged/item",
            "charged/request",
            "mean L s",
            "ok",
            "failed",
            "x (a)",
        ],
        cost_rows,
        title="429s, tokens and speed-up (tokens/item: usage in+out; charged: prompt + max_tokens, "
        "what the TPM limit counts; x (a): items/min over (a)'s, subsets extrapolated to "
        f"{total} records)",
    )
    for key in ("d", "e"):
        if key in outcomes:
            o = outcomes[key]
            sizes = ", ".join(f"{size}x{n}" for size, n in sorted(o.pack_sizes.items()))
            print(f"{o.plan.label}: pack sizes used (size x requests): {sizes}")
    print(
        f"note: the time scale ({time_scale}) shortens latency but not the per-minute limits, so (a), "
        f"which is bound by latency alone, would be {1 / time_scale:g}x slower at real latency, "
        "and every ratio to (a) larger."
    )

    print()
    fixed = [outcomes[k] for k in ("c5", "c10", "c20", "c50") if k in outcomes]
    for o in fixed:
        bd = bounds(o)
        ratio = o.summary["items_per_min"] / bd["run"]
        steady = steady_rate(o)
        extra = "" if steady is None else f"; steady {steady / bd['steady'] * 100:.0f}% of the formula"
        print(
            verdict(
                f"{o.plan.label} >= 90% of its bound",
                ratio >= 0.90,
                f"{ratio * 100:.1f}% ({o.summary['items_per_min']:,.0f} of {bd['run']:,.0f} items/min, "
                f"{bd['run_term']}-bound){extra}",
            )
        )
    d = outcomes.get("d")
    if d is not None and fixed:
        best = max(fixed, key=lambda o: o.summary["items_per_min"])
        ratio = d.summary["items_per_min"] / best.summary["items_per_min"]
        print(
            verdict(
                "auto >= 85% of the best fixed size",
                ratio >= 0.85,
                f"{ratio * 100:.1f}% of {best.plan.label} "
                f"({d.summary['items_per_min']:,.0f} vs {best.summary['items_per_min']:,.0f} items/min)",
            )
        )
    limited = [o for k, o in outcomes.items() if k != "e"]
    if limited:
        worst = max(limited, key=share_429)
        total_429 = sum(o.sim["rate_limited"] for o in limited)
        total_req = sum(o.sim["requests"] for o in limited)
        print(
            verdict(
                "< 1% of requests answered 429 (every run with limits given)",
                share_429(worst) < 0.01,
                f"worst {worst.plan.label}: {share_429(worst) * 100:.2f}%; all runs: {total_429} of "
                f"{total_req} ({total_429 / max(1, total_req) * 100:.2f}%)",
            )
        )
    if d is not None and a is not None:
        ratio = d.summary["items_per_min"] / a.summary["items_per_min"]
        print(
            verdict(
                "auto >= 10x faster than (a)",
                ratio >= 10,
                f"{ratio:.1f}x ({d.summary['items_per_min']:,.0f} vs {a.summary['items_per_min']:,.0f} "
                f"items/min)",
            )
        )
    b = outcomes.get("b")
    if d is not None and b is not None:
        b_rate = extrapolate(b, total)[0] if b.plan.records < total else b.summary["items_per_min"]
        ratio = d.summary["items_per_min"] / b_rate
        own = d.summary["items_per_min"] / b.summary["items_per_min"]
        also = f"; against (b)'s own {b.plan.records}-record run: {own:.1f}x"
        print(
            verdict(
                "auto >= 3x faster than (b)",
                ratio >= 3,
                f"{ratio:.1f}x ({d.summary['items_per_min']:,.0f} vs {b_rate:,.0f} items/min for "
                f"{total} records{also})",
            )
        )
    e = outcomes.get("e")
    if e is not None:
        print(
            f"info  (e) limits learnt from headers: {e.summary['items_per_min']:,.0f} items/min, "
            f"{e.sim['rate_limited']} of {e.sim['requests']} requests answered 429 "
            f"({share_429(e) * 100:.1f}%)"
            + (f", {e.summary['items_per_min'] / d.summary['items_per_min'] * 100:.0f}% of (d)" if d else "")
        )


if __name__ == "__main__":
    sys.exit(main())
