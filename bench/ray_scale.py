"""Scale-out on Ray (issue 9's acceptance, bench/ray_scale.py).

A local Ray (``ray.init(num_cpus=2)``, workers of 0.5 CPU each) runs
``llmbatch.ray.run_ray`` against the simulator, started as a separate process.

(A) Scaling: 1, 2 and 3 workers, no rate limit. Each worker runs fixed packs of
    10 records at a fixed concurrency of 2 (``--batch-size 10 --concurrency 2``),
    and every completion takes 0.5 s; the simulator serves up to 64 completions
    at once, far more than the workers ask for. So each worker is bound by its
    own in-flight capacity — Little's law: concurrency x pack / latency =
    2 x 10 / 0.5 s = 40 items/s = 2,400 items/min — which is what adding a
    worker adds: a worker is one more client's worth of concurrent requests (one
    more API key's or one more model replica's). The RPM limit plays no part.
    The bound is workers x 2,400 items/min; scaling is near-linear when each run
    reaches most of it.

(B) The limit binds: 3 workers, concurrency 4 each, packs of 5, 0.1 s latency —
    capacity ~600 requests/s — against a 300 RPM limit set on the simulator and
    given to the client (``rpm``). The one shared limiter lets the initial
    allowance (a minute's worth, 300 requests) through at once and then holds
    every worker together to 300/min: the steady rate after the burst is
    measured from the simulator's request counter, and its 429s counted.

Items/min are measured at the simulator (``/sim/stats`` polled every 0.1 s) over
the span from the first request to the last answer, so Ray's start-up (reading,
numbering rows, starting actors: ~15-20 s here) is left out; the end-to-end time
is shown too. Prints a table and PASS/FAIL lines; always exits 0.

    .venv/bin/python bench/ray_scale.py [--records 1200] [--hold 30]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from _common import Simulator, print_table, reviews, verdict, write_jsonl

from llmbatch import ProviderConfig, RunOptions
from llmbatch._task import Task

LATENCY = 0.5
BATCH, CONCURRENCY = 10, 2
PER_WORKER = CONCURRENCY * BATCH / LATENCY * 60  # items/min a worker can reach (Little's law)
RPM = 300


class Sampler:
    """Polls the simulator's counters: (time, requests, items answered, 429s)."""

    def __init__(self, sim: Simulator, every: float = 0.1) -> None:
        self.sim = sim
        self.every = every
        self.samples: list[tuple[float, int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        stats = self.sim.stats()
        self.samples.append(
            (time.monotonic(), stats["requests"], stats["items_answered"], stats["rate_limited"])
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def span(self) -> tuple[float, float]:
        """From the first request to the last answer."""
        start = next(t for t, requests, _, _ in self.samples if requests > 0)
        final = self.samples[-1][2]
        end = next(t for t, _, items, _ in self.samples if items == final)
        return start, end


def _task() -> Task:
    return Task(
        name="sentiment",
        instructions="Classify the sentiment of the review.",
        input="{title}: {text}",
        id="id",
        output={"type": "object", "properties": {"label": {"enum": ["positive", "negative", "neutral"]}}},
        answer_tokens=12,
    )


def _run(
    sim: Simulator, source: Path, out: Path, *, workers: int, options: RunOptions, name: str
) -> tuple[dict[str, Any], Sampler, float]:
    from llmbatch.ray import run_ray

    sim.reset()
    config = ProviderConfig(base_url=sim.base_url, api_key="sk-bench", model="sim-1")
    started = time.monotonic()
    with Sampler(sim) as sampler:
        summary = run_ray(
            source,
            _task(),
            out,
            workers=workers,
            provider_config=config,
            options=options,
            worker_cpus=0.5,
            rows_per_block=200,
            limiter_name=name,
        )
    return summary, sampler, time.monotonic() - started


def scaling(records: int, work: Path) -> tuple[list[list[Any]], list[str]]:
    source = work / "scale.jsonl"
    write_jsonl(source, reviews(records, tokens=(30, 60), seed=1))
    rows: list[list[Any]] = []
    rates: dict[int, float] = {}
    options = RunOptions(batch_size=BATCH, concurrency=CONCURRENCY)
    with Simulator("--base-latency", str(LATENCY), "--max-concurrency", "64") as sim:
        for workers in (1, 2, 3):
            summary, sampler, wall = _run(
                sim,
                source,
                work / f"scale-{workers}.jsonl",
                workers=workers,
                options=options,
                name=f"s{workers}",
            )
            start, end = sampler.span()
            rate = summary["items_ok"] / (end - start) * 60
            rates[workers] = rate
            bound = workers * PER_WORKER
            rows.append(
                [
                    f"A: {workers} worker{'s' if workers > 1 else ''}",
                    summary["items_ok"],
                    sampler.samples[-1][1],
                    sampler.samples[-1][3],
                    rate,
                    bound,
                    f"{rate / bound * 100:.0f}%",
                    f"{rate / rates[1]:.2f}x",
                    wall,
                ]
            )
    efficiency = rates[3] / (3 * rates[1])
    checks = [
        verdict(
            "near-linear scaling",
            efficiency >= 0.85 and rates[1] < rates[2] < rates[3],
            f"3 workers {rates[3]:,.0f} items/min = {rates[3] / rates[1]:.2f}x one worker "
            f"({efficiency * 100:.0f}% of linear; target >= 85%)",
        ),
        verdict(
            "each run near its concurrency bound",
            all(rates[w] >= 0.8 * w * PER_WORKER for w in rates),
            ", ".join(f"{w}: {rates[w] / (w * PER_WORKER) * 100:.0f}%" for w in rates) + " (target >= 80%)",
        ),
    ]
    return rows, checks


def rate_limited(hold: float, work: Path) -> tuple[list[list[Any]], list[str]]:
    # Enough requests for the burst (RPM) plus `hold` seconds at the limit, packs of 5.
    requests = int(RPM + RPM / 60 * hold * 1.2) + 60
    source = work / "rpm.jsonl"
    write_jsonl(source, reviews(requests * 5, tokens=(30, 60), seed=2))
    options = RunOptions(batch_size=5, concurrency=4, rpm=RPM)
    with Simulator("--base-latency", "0.1", "--rate-limit-rpm", str(RPM)) as sim:
        summary, sampler, wall = _run(
            sim, source, work / "rpm.jsonl.out.jsonl", workers=3, options=options, name="r"
        )
    start, end = sampler.span()
    total = sampler.samples[-1][1]
    limited = sampler.samples[-1][3]
    last = next(t for t, n, _, _ in sampler.samples if n == total)
    # The steady rate: the second half of the span from the first to the last request,
    # long after the burst's allowance (RPM requests at once) is spent.
    middle = start + (last - start) / 2
    t0, n0 = next((t, n) for t, n, _, _ in sampler.samples if t >= middle)
    steady = (total - n0) / max(1e-9, last - t0) * 60
    overall = total / (last - start) * 60
    series = ", ".join(
        f"{t - start:.0f}s:{n}"
        for t, n, _, _ in sampler.samples[:: max(1, int(5 / sampler.every))]
        if t >= start
    )
    print(f"B: requests sent by time since the first request: {series}, {last - start:.0f}s:{total}")
    rows = [
        [
            "B: 3 workers, 300 RPM",
            summary["items_ok"],
            total,
            limited,
            summary["items_ok"] / (end - start) * 60,
            RPM * 5,
            f"{steady / RPM * 100:.0f}% RPM",
            "",
            wall,
        ]
    ]
    checks = [
        verdict(
            "aggregate held at the limit",
            0.9 * RPM <= steady <= 1.05 * RPM,
            f"{steady:.0f} requests/min over the last {last - t0:.0f} s (limit {RPM}; target 90-105%); "
            f"{overall:.0f}/min over the whole run, burst included (at most {RPM} + {RPM}/min)",
        ),
        verdict("fewer than 1% of requests answered 429", limited < 0.01 * total, f"{limited} of {total}"),
    ]
    return rows, checks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1200, help="records per scaling run")
    parser.add_argument("--hold", type=float, default=40.0, help="seconds at the limit after the burst")
    parser.add_argument("--only", choices=["A", "B"], help="run one part")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import ray

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # one INFO line per execution otherwise

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        with tempfile.TemporaryDirectory(prefix="llmbatch-ray-bench-") as tmp:
            work = Path(tmp)
            rows_a, checks_a = scaling(args.records, work) if args.only != "B" else ([], [])
            rows_b, checks_b = rate_limited(args.hold, work) if args.only != "A" else ([], [])
    finally:
        ray.shutdown()
    print_table(
        ["run", "items", "requests", "429s", "items/min", "bound", "of bound", "vs 1 worker", "wall s"],
        rows_a + rows_b,
        title=f"Ray scale-out (Ray {ray.__version__}, 2 CPUs, workers of 0.5 CPU)",
    )
    print()
    for line in checks_a + checks_b:
        print(line)


if __name__ == "__main__":
    main()
