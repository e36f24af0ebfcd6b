"""Engine overhead: the client path alone (issue 4's acceptance, bench/overhead.py).

100,000 records are streamed from a JSONL file through the whole client path —
ingest into the job store, plan, render, parse, validate, store (one transaction per
request), write the output file — against an in-process provider that answers every
request instantly with a valid answer for every key it was asked for. Pack 20,
concurrency 8, no cache, no rate limits.

Each measurement runs in a child process (this script with ``--child``), so its peak
RSS (``ru_maxrss``) is the job's alone. A second run on 20,000 records shows whether
memory grows with the number of records (it must not: streaming). Python-heap peaks
(tracemalloc) are measured on the 20,000-record run, as tracemalloc slows the job.

Targets: >= 5,000 items/s and peak RSS < 300 MB for 100,000 records. If the speed
A cProfile run on 20,000 records then prints the hot spots (always when the speed
target is missed; skipped with ``--no-profile`` otherwise). Prints tables and
PASS/FAIL lines; always exits 0.

    .venv/bin/python bench/overhead.py [--records 100000] [--no-profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from _common import print_table, reviews, verdict

from llmbatch._jobs.job import JobSpec, run_job
from llmbatch._options import RunOptions
from llmbatch._task import Task
from llmbatch._types import Capabilities, Completion, Request, Usage
from llmbatch.providers import Provider

BATCH_SIZE = 20
CONCURRENCY = 8
ANSWER = {"label": "positive", "confidence": 0.9}
ANSWER_TOKENS_PER_ITEM = 19  # "k123":{"label":"positive","confidence":0.9}, as count_tokens sees it

OUTPUT = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["label", "confidence"],
}


class InstantProvider(Provider):
    """Answers at once: the same valid answer under every key the request's schema requires."""

    name = "instant"
    capabilities = Capabilities(json_schema=True, tools=True, billed=False)

    def __init__(self) -> None:
        self.model = "instant-1"
        self.requests = 0

    async def complete(self, request: Request) -> Completion:
        await asyncio.sleep(0)  # one turn of the event loop, like any I/O would take
        assert request.schema is not None
        keys = request.schema["required"]
        self.requests += 1
        content = json.dumps({key: ANSWER for key in keys}, separators=(",", ":"))
        usage = Usage(
            prompt_tokens=request.est_prompt_tokens, completion_tokens=len(keys) * ANSWER_TOKENS_PER_ITEM
        )
        return Completion(content=content, finish_reason="stop", usage=usage, latency=0.0)


def task() -> Task:
    return Task(
        instructions=(
            "Classify the overall sentiment of each product review: positive if the reviewer is "
            "satisfied, negative if dissatisfied, neutral if mixed or purely factual. Set confidence "
            "to the probability that the label is right."
        ),
        input="{title}: {text}",
        output=OUTPUT,
        id="id",
        name="sentiment",
        answer_tokens=16,
    )


def write_records(path: Path, count: int) -> None:
    """``count`` JSONL records: 2,000 distinct short reviews, cycled, each with its own id."""
    pool = reviews(2000, tokens=(10, 19), seed=9)
    with path.open("w", encoding="utf-8") as f:
        for i in range(count):
            r = pool[i % len(pool)]
            f.write(
                json.dumps({"id": f"r{i:06d}", "title": r["title"], "text": r["text"]}, ensure_ascii=False)
            )
            f.write("\n")


# -- the child: one job, measured --------------------------------------------------------


def child(workdir: Path, records: int, mode: str) -> None:
    data = workdir / f"records-{records}.jsonl"
    out = workdir / f"out-{records}-{mode}.jsonl"
    job_dir = workdir / f"job-{records}-{mode}"
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    rss_before = usage_before.ru_maxrss
    spec = JobSpec(
        task=task(),
        input=data,
        output=out,
        job_dir=job_dir,
        options=RunOptions(batch_size=BATCH_SIZE, concurrency=CONCURRENCY),
        cache_dir=None,
    )
    provider = InstantProvider()
    profiler = cProfile.Profile() if mode == "profile" else None
    if mode == "tracemalloc":
        tracemalloc.start()
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = asyncio.run(run_job(spec, provider))
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - started
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    traced = tracemalloc.get_traced_memory()[1] if mode == "tracemalloc" else None
    summary = result.metrics.summary()
    ok_rows = 0
    with out.open(encoding="utf-8") as f:
        for line in f:
            ok_rows += json.loads(line)["status"] == "ok"
    report: dict[str, Any] = {
        "records": records,
        "mode": mode,
        "wall_s": wall,
        "run_s": summary["elapsed_s"],
        "cpu_s": cpu,
        "requests": provider.requests,
        "counts": result.counts,
        "rows_written": result.rows_written,
        "ok_rows": ok_rows,
        "mean_pack": summary["mean_pack_size"],
        "rss_before_kb": rss_before,
        "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "tracemalloc_peak": traced,
        "db_bytes": sum(p.stat().st_size for p in job_dir.iterdir()),
        "out_bytes": out.stat().st_size,
    }
    if profiler is not None:
        report["profile"] = hot_spots(profiler, wall)
    print(json.dumps(report))


def hot_spots(profiler: cProfile.Profile, wall: float, top: int = 18) -> dict[str, Any]:
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    rows = []
    for (file, line, func), (_, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {"func": func, "where": f"{_short(file)}:{line}", "calls": nc, "tottime": tt, "cumtime": ct}
        )
    by_self = sorted(rows, key=lambda r: r["tottime"], reverse=True)[:top]
    by_cum = sorted(
        (r for r in rows if "llmbatch" in r["where"] and "/bench/" not in r["where"]),
        key=lambda r: r["cumtime"],
        reverse=True,
    )[:top]
    return {"total": total, "wall": wall, "self": by_self, "cumulative": by_cum}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _short(file: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


# -- the parent ---------------------------------------------------------------------------


def measure(workdir: Path, records: int, mode: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", str(workdir), "--records", str(records), "--mode", mode]
    proc = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ})
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=20_000, help="records of the comparison run")
    parser.add_argument(
        "--no-profile", action="store_true", help="profile only if the speed target is missed"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="plain", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.records, args.mode)
        return 0

    print("overhead: the client path alone (ingest, plan, render, parse, validate, store, write)")
    print(
        f"provider: in-process, answers instantly; pack {BATCH_SIZE}, concurrency {CONCURRENCY}, no cache, "
        "no limits; JSONL in, JSONL out; each run in its own child process"
    )
    print(f"machine: {os.cpu_count()} CPUs, load average {_load()} before the runs")
    results = []
    with tempfile.TemporaryDirectory(prefix="llmbatch-overhead-") as tmp:
        workdir = Path(tmp)
        for n in sorted({args.records, args.small}):
            write_records(workdir / f"records-{n}.jsonl", n)
        size = (workdir / f"records-{args.records}.jsonl").stat().st_size
        print(f"input: {args.records:,} records, {size / 1e6:.1f} MB of JSONL")
        runs = [(args.records, "plain"), (args.small, "plain"), (args.small, "tracemalloc")]
        for n, mode in runs:
            print(f"run: {n:,} records ({mode}) ...", flush=True)
            results.append(measure(workdir, n, mode))
        main_run = results[0]
        profile = None
        items_per_s = main_run["records"] / main_run["wall_s"]
        if not args.no_profile or items_per_s < 5000:
            print(f"run: {args.small:,} records (cProfile) ...", flush=True)
            profile = measure(workdir, args.small, "profile")

    rows = []
    for r in results:
        rows.append(
            [
                f"{r['records']:,} records ({r['mode']})",
                r["wall_s"],
                r["run_s"],
                r["records"] / r["wall_s"],
                r["records"] / r["run_s"],
                r["cpu_s"],
                r["records"] / r["cpu_s"],
                r["requests"],
                r["ok_rows"],
                r["rss_before_kb"] / 1024,
                r["rss_peak_kb"] / 1024,
                None if r["tracemalloc_peak"] is None else r["tracemalloc_peak"] / 2**20,
                r["db_bytes"] / 2**20,
            ]
        )
    print_table(
        [
            "run",
            "wall s",
            "dispatch s",
            "items/s (wall)",
            "items/s (dispatch)",
            "CPU s",
            "items/CPU s",
            "requests",
            "ok rows",
            "RSS after imports MB",
            "peak RSS MB",
            "tracemalloc peak MB",
            "job store MB",
        ],
        rows,
        title="results (wall: the whole job: ingest, dispatch, output file; dispatch: the request loop)",
    )

    if profile is not None:
        prof = profile["profile"]
        total = prof["total"]
        print(
            f"\nprofile of {profile['records']:,} records under cProfile ({profile['wall_s']:.1f} s wall, "
            f"{total:.1f} s profiled; cProfile inflates call-heavy code, so shares are indicative): "
            "top functions by own time"
        )
        print_table(
            ["function", "where", "calls", "own s", "own %", "cum s", "cum %"],
            [
                [
                    r["func"],
                    r["where"],
                    r["calls"],
                    r["tottime"],
                    r["tottime"] / total * 100,
                    r["cumtime"],
                    r["cumtime"] / total * 100,
                ]
                for r in prof["self"]
            ],
        )
        print("\nllmbatch functions by cumulative time")
        print_table(
            ["function", "where", "calls", "cum s", "cum %"],
            [
                [r["func"], r["where"], r["calls"], r["cumtime"], r["cumtime"] / total * 100]
                for r in prof["cumulative"]
            ],
        )

    print(f"load average after the runs: {_load()} (other processes compete for the CPUs when it is high)")
    big = results[0]
    small = next(r for r in results[1:] if r["mode"] == "plain")
    speed = big["records"] / big["wall_s"]
    peak_mb = big["rss_peak_kb"] / 1024
    growth = (big["rss_peak_kb"] - small["rss_peak_kb"]) / 1024
    print()
    print(
        verdict(
            "every record written ok",
            big["ok_rows"] == big["records"],
            f"{big['ok_rows']:,} of {big['records']:,} rows ok",
        )
    )
    print(
        verdict(
            f">= 5,000 items/s for {big['records']:,} records",
            speed >= 5000,
            f"{speed:,.0f} items/s over the whole job ({big['records'] / big['run_s']:,.0f} items/s "
            f"in the request loop alone; {big['records'] / big['cpu_s']:,.0f} items per CPU second)",
        )
    )
    print(
        verdict(
            f"peak RSS < 300 MB for {big['records']:,} records",
            peak_mb < 300,
            f"{peak_mb:.0f} MB ({growth:+.1f} MB against {small['records']:,} records: "
            f"{'streaming' if growth < 25 else 'memory grows with the input'})",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
