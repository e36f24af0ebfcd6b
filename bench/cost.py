"""Cost per record by strategy, the dry-run estimate against real runs, and the budget cap
(issue 6's acceptance).

A label task with an ~800-token instruction block (definitions and worked examples),
~40-token reviews and a one-field answer, priced 1:4 input:output (the simulator's
``sim-1``: $0.15 / $0.60 per million tokens), against the simulator started as a
separate process and reached through the official OpenAI SDK (sync requests and its
``/v1/files`` + ``/v1/batches`` batch API).

    1. ``estimate`` (no API call) for: one record per request, packed at 20, packed + batch API,
       packed + prompt caching, packed + caching at the flex tier
    2. the same five strategies run for real; cost per record from the provider's usage (the
       caching runs against a second simulator emulating OpenAI's automatic prompt cache; the
       flex run's simulator turns a tenth of flex requests away as "resource unavailable")
    3. ``--max-cost`` at half the packed estimate, then a re-run with a larger budget
    4. the estimate's low–high range against 20 seeded runs of every strategy on a simulator with
       faults (dropped, invalid and truncated answers, 5xx): each run's cost inside the range
    5. ``--deadline``: the strategy the plan picks at tight limits, run on a simulator with
       those limits, finishing within the deadline
    6. packed + batch + cached prefix through Anthropic's Message Batches on the simulator,
       primed (one pack as a batch of its own first, the rest once it ended) and cold (all at
       once: the lines run in parallel, none reads the cache, every one writes it); priced
       at sim-1's rates and again at Claude Haiku 4.5's (writes 2× input for the hour-long
       entries batch lines ask for, reads 0.1×)

Targets: packed 20 ≤ 25% of one-per-request per record; packed + batch ≤ 13%; packed +
caching + flex ≤ 8% with every record answered; packed + batch + primed cache ≤ 6%, every
line after the primer reading ≥ 90% of the cacheable prefix and the cold batch 0%; the range
holding the actual cost in ≥ 19 of 20 seeded runs; the deadline's pick finishing in time; the
estimate within 10% of each run's cost (prompt caching included); the budget run stops
within one request of its budget and never above it; the re-run finishes the rest paying
nothing twice.
Prints tables and one PASS/FAIL line per target; exits 0.

    .venv/bin/python bench/cost.py [--records 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Simulator, pct, print_table, provider_for, reviews, verdict, write_jsonl

from llmbatch._exceptions import BudgetReached
from llmbatch._io import open_reader
from llmbatch._jobs.estimate import StrategyEstimate, cheapest_within, estimate_job
from llmbatch._jobs.job import JobSpec, run_job
from llmbatch._jobs.pilot import Pilot, apply_pilot, run_pilot
from llmbatch._options import RunOptions
from llmbatch._pack import PACKERS
from llmbatch._pack.tokens import count_tokens
from llmbatch._pricing import Price, PriceTable
from llmbatch._store.job import JobStore
from llmbatch._task import Task
from llmbatch._types import Item, Usage
from llmbatch.providers import Provider, ProviderConfig, create_provider
from llmbatch.sim import SimConfig, SimEngine

LABELS = ["product_quality", "shipping", "customer_service", "price_value", "usability", "other"]

DEFINITIONS = """\
You label customer reviews for an online shop's product team. Read each review (its \
title and text together) and choose the single aspect of the purchase it is mainly about.

Labels (choose exactly one):
- "product_quality": build quality, durability, defects, breakage, materials, and how well \
the product performs its main function over time.
- "shipping": delivery time, damaged or missing parcels, packaging, tracking numbers, \
couriers, and anything that happened between the warehouse and the door.
- "customer_service": contact with the seller or manufacturer: refunds, returns, \
replacements, warranty claims, answers to emails, chats or calls.
- "price_value": whether the product is worth its price, comparisons with cheaper or more \
expensive products, discounts, coupons and sales.
- "usability": setup, assembly, instructions and manuals, companion apps, controls, and \
ease of cleaning and everyday handling.
- "other": anything else, including reviews that only state an opinion without saying why.

Rules:
- Judge the reviewer's own experience, not what they expected before buying.
- When two aspects are equally present, prefer the one mentioned first.
- A review that praises or blames the product in general, with no reason, is "other".
- Ignore star counts and emojis; read the words.

Examples:
"""

EXAMPLES = [
    (
        "Cracked after a week: The handle snapped off the kettle after seven days of normal use.",
        "product_quality",
    ),
    ("Arrived late: The parcel took three weeks and the box was crushed when it came.", "shipping"),
    (
        "Great support: The seller replaced my faulty unit within two days, no questions asked.",
        "customer_service",
    ),
    ("Worth every penny: Half the price of the big brands and does exactly the same job.", "price_value"),
    ("Confusing setup: The app kept crashing and the manual skips the pairing step entirely.", "usability"),
    ("Five stars: Love it, would buy again.", "other"),
    ("Flimsy: The zipper broke on the second trip and the stitching is coming apart.", "product_quality"),
    (
        "Lost in transit: Tracking said delivered but nothing was at the door; courier never replied.",
        "shipping",
    ),
    (
        "Refund refused: Three emails and a call, and they still will not refund the return.",
        "customer_service",
    ),
    (
        "Overpriced: A cheaper model from the supermarket works just as well for a third of this.",
        "price_value",
    ),
    ("Easy to clean: Comes apart in seconds and every piece goes in the dishwasher.", "usability"),
    ("Meh: It is fine I guess.", "other"),
]


def instructions() -> str:
    """The definitions and worked examples, padded with more examples to ~800 tokens."""
    lines = [f'Review: "{text}"\nLabel: {label}' for text, label in EXAMPLES]
    text = DEFINITIONS + "\n\n".join(lines)
    rounds = 0
    while count_tokens(text) < 800:
        text_, label = EXAMPLES[rounds % len(EXAMPLES)]
        text += f'\n\nReview: "{text_} Still thinking about it."\nLabel: {label}'
        rounds += 1
    return text


def task() -> Task:
    return Task(
        name="aspect",
        instructions=instructions(),
        input="{title}: {text}",
        output={"type": "object", "properties": {"label": {"enum": LABELS}}, "required": ["label"]},
    )


async def baseline(the_task: Task, records: list[dict[str, Any]]) -> tuple[float, float]:
    """Prompt tokens per record of a plain request as a user would write it, counted by the
    simulator, against llmbatch's pack of one: the "of one per request" shares' baseline."""
    engine = SimEngine(SimConfig())
    plain = ours = 0
    for index, record in enumerate(records):
        body = {
            "model": "sim-1",
            "max_tokens": 20,
            "messages": [
                {"role": "system", "content": the_task.instructions},
                {"role": "user", "content": f"{record['title']}: {record['text']}"},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": the_task.item_schema, "strict": True},
            },
        }
        plain += (await engine.chat(body)).body["usage"]["prompt_tokens"]
        item = Item(index, str(index), the_task.render_input(record))
        ours += PACKERS["json"].render(the_task, [item]).est_prompt_tokens
    return plain / len(records), ours / len(records)


def anthropic_provider(base_url: str, *, primed: bool) -> Provider:
    """Anthropic's API on the simulator; ``primed=False`` submits a batch cold, as a tool that
    does not know the rule would."""
    config = ProviderConfig(base_url=base_url.removesuffix("/v1"), api_key="sk-bench", model="sim-1")
    provider = create_provider("anthropic", config)
    if not primed:
        provider.capabilities = dataclasses.replace(provider.capabilities, primes_batch_cache=False)
    return provider


async def run(
    base_url: str,
    data: Path,
    job_dir: Path,
    *,
    size: int,
    mode: str = "sync",
    max_cost: float | None = None,
    provider: Provider | None = None,
) -> dict[str, Any]:
    """One job; returns its request totals from the store (what was paid, over every run)."""
    spec = JobSpec(
        task=task(),
        input=data,
        output=None,
        job_dir=job_dir,
        options=RunOptions(
            batch_size=size, concurrency=32, mode=mode, poll_interval=0.2, max_cost=max_cost, shuffle=False
        ),
        prices=PriceTable.load(),
    )
    stopped = False
    try:
        await run_job(spec, provider or provider_for(base_url))
    except BudgetReached:
        stopped = True
    store = JobStore.open(job_dir)
    try:
        totals = store.request_totals()
        totals["done"] = store.counts().get("done", 0)
        totals["max_request_cost"] = store.db.execute("SELECT MAX(cost) FROM requests").fetchone()[0] or 0.0
        # Per request in id order: the first of a primed job is its primer.
        totals["cache_rows"] = store.db.execute(
            "SELECT prompt_tokens, cached_tokens, cache_write_tokens FROM requests ORDER BY id"
        ).fetchall()
    finally:
        store.close()
    totals["stopped"] = stopped
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--size", type=int, default=20)
    args = parser.parse_args()

    the_task = task()
    print(f"instructions: {count_tokens(the_task.instructions)} tokens; records: {args.records}")
    with tempfile.TemporaryDirectory(prefix="llmbatch-cost-") as tmp:
        root = Path(tmp)
        data = root / "reviews.jsonl"
        write_jsonl(data, reviews(args.records, tokens=(34, 46), seed=6))
        per_record = sum(
            count_tokens(f"{r['title']}: {r['text']}") for r in reviews(200, tokens=(34, 46), seed=6)
        )
        print(f"record: {per_record / 200:.1f} tokens on average")
        plain, ours = asyncio.run(baseline(the_task, reviews(200, tokens=(34, 46), seed=6)))
        print(
            f"baseline: a plain single-record request (instructions, the record, the schema once in "
            f"the response format) sends {plain:.1f} prompt tokens; llmbatch's '1 per request' "
            f"{ours:.1f} ({ours / plain - 1:+.1%})"
        )

        price = PriceTable.load().get("sim-1")
        estimate = estimate_job(
            the_task, open_reader(data), PACKERS["json"], batch_size=args.size, price=price
        )
        predicted = {s.name: s for s in estimate.strategies}
        single_name, packed_name = "1 per request", f"packed {args.size}"
        batch_name = f"packed {args.size} + batch API"
        caching_name = f"packed {args.size} + caching"
        flex_name = f"packed {args.size} + caching + flex"

        with Simulator("--time-scale", "0.01", "--batch-delay", "1") as sim:
            actual = {
                single_name: asyncio.run(run(sim.base_url, data, root / "single", size=1)),
                packed_name: asyncio.run(run(sim.base_url, data, root / "packed", size=args.size)),
                batch_name: asyncio.run(
                    run(sim.base_url, data, root / "batch", size=args.size, mode="batch")
                ),
            }
            budget = (predicted[packed_name].cost or 0.0) / 2
            capped = asyncio.run(run(sim.base_url, data, root / "capped", size=args.size, max_cost=budget))
            rerun = asyncio.run(run(sim.base_url, data, root / "capped", size=args.size, max_cost=budget * 4))
        with Simulator("--time-scale", "0.01", "--prompt-caching") as sim:
            actual[caching_name] = asyncio.run(run(sim.base_url, data, root / "caching", size=args.size))
        # A fresh simulator: the caching run's prompts would still be in its cache.
        with Simulator("--time-scale", "0.01", "--prompt-caching", "--flex-unavailable", "0.1") as sim:
            actual[flex_name] = asyncio.run(
                run(sim.base_url, data, root / "flex", size=args.size, mode="flex")
            )

        anthropic = {}
        for primed in (True, False):
            # A fresh simulator each: the first run's entry would warm the second.
            with Simulator("--time-scale", "0.01", "--batch-delay", "1") as sim:
                provider = anthropic_provider(sim.base_url, primed=primed)
                job = root / ("primed" if primed else "cold")
                anthropic[primed] = asyncio.run(
                    run(sim.base_url, data, job, size=args.size, mode="batch", provider=provider)
                )

        seeded = {
            strategy.name: [
                asyncio.run(run_seeded(data, root / f"{n}-seed{seed}", strategy, seed=seed))
                for seed in range(1, SEEDS + 1)
            ]
            for n, strategy in enumerate(estimate.strategies)
        }
        deadline = asyncio.run(run_deadline(the_task, data, root / "deadline", size=args.size))
        # A pilot of 200 records on a simulator with the same faults (another seed) narrows the
        # plan; the same seeded runs must still fall inside its ranges.
        with Simulator("--time-scale", "0.01", "--seed", "99", *FAULTS) as sim:
            sample = [r.fields for r in itertools.islice(open_reader(data), PILOT) if r.fields is not None]
            pilot = asyncio.run(
                run_pilot(
                    the_task,
                    sample,
                    provider_for(sim.base_url),
                    batch_size=args.size,
                    prices=PriceTable.load(),
                )
            )
        piloted = apply_pilot(estimate, pilot, price)

    names = (single_name, packed_name, batch_name, caching_name, flex_name)
    status = report(args.records, predicted, actual, names, budget, capped, rerun)
    status = status or report_priming(args.records, actual[single_name], anthropic)
    status = status or report_plan(estimate.strategies, seeded, deadline)
    return status or report_pilot(pilot, piloted.strategies, estimate.strategies, seeded)


SEEDS = 20
PILOT = 200
FAULTS = ("--drop-rate", "0.03", "--corrupt-rate", "0.02", "--truncate-rate", "0.02", "--error-rate", "0.02")
DEADLINE_LIMITS = (40.0, 100_000.0)
DEADLINE_MINUTES = 5.0


async def run_seeded(data: Path, job_dir: Path, strategy: StrategyEstimate, *, seed: int) -> dict[str, Any]:
    """One strategy on a simulator with faults seeded by ``seed``: what retries cost. The caching
    strategies get the simulator's prompt cache, flex a tenth of its requests turned away."""
    flags = ["--time-scale", "0.01", "--batch-delay", "1", "--seed", str(seed), *FAULTS]
    if "caching" in strategy.name:
        flags.append("--prompt-caching")
    if strategy.mode == "flex":
        flags += ["--flex-unavailable", "0.1"]
    with Simulator(*flags) as sim:
        return await run(sim.base_url, data, job_dir, size=strategy.batch_size, mode=strategy.mode)


async def run_deadline(the_task: Task, data: Path, job_dir: Path, *, size: int) -> dict[str, Any]:
    """The plan's pick for DEADLINE_MINUTES at DEADLINE_LIMITS, run against a simulator with
    those limits; its wall time and the pick."""
    price = PriceTable.load().get("sim-1")
    plan = estimate_job(the_task, open_reader(data), PACKERS["json"], batch_size=size, price=price)
    rpm, tpm = DEADLINE_LIMITS
    chosen = cheapest_within(plan.strategies, DEADLINE_MINUTES, rpm, tpm)
    assert chosen is not None, "the bench's deadline leaves a sync strategy"
    flags = ["--time-scale", "0.01", "--rate-limit-rpm", str(int(rpm)), "--rate-limit-tpm", str(int(tpm))]
    if "caching" in chosen.name:
        flags.append("--prompt-caching")
    with Simulator(*flags) as sim:
        started = time.monotonic()
        totals = await run(sim.base_url, data, job_dir, size=chosen.batch_size, mode=chosen.mode)
        totals["wall_s"] = time.monotonic() - started
    totals["chosen"] = chosen
    return totals


def runs_inside(strategy: StrategyEstimate, runs: list[dict[str, Any]]) -> int:
    """How many of ``runs`` cost within the strategy's low–high range."""
    low, high = strategy.low or 0.0, strategy.high or 0.0
    return sum(low <= r["cost"] <= high for r in runs)


def range_verdict(what: str, held: dict[str, int]) -> str:
    """PASS when every strategy's range held all seeded runs but one at most."""
    detail = ", ".join(f"{name}: {n}/{SEEDS}" for name, n in held.items()) + f" (each ≥ {SEEDS - 1})"
    return verdict(what, min(held.values()) >= SEEDS - 1, detail)


def report_plan(
    plan: list[StrategyEstimate], seeded: dict[str, list[dict[str, Any]]], deadline: dict[str, Any]
) -> int:
    """The plan's range against seeded runs with faults, and its deadline pick against a run."""
    rows, held = [], {}
    for strategy in plan:
        runs = seeded[strategy.name]
        low, high = strategy.low or 0.0, strategy.high or 0.0
        held[strategy.name] = runs_inside(strategy, runs)
        costs = sorted(r["cost"] for r in runs)
        rows.append(
            [
                strategy.name,
                f"${low:.5f}",
                f"${strategy.cost or 0:.5f}",
                f"${high:.5f}",
                f"${costs[0]:.5f}",
                f"${costs[len(costs) // 2]:.5f}",
                f"${costs[-1]:.5f}",
                f"{held[strategy.name]}/{len(runs)}",
                f"{sum(r['done'] for r in runs) // len(runs)}",
            ]
        )
    print_table(
        [
            "seeded runs (faults on)",
            "low",
            "expected",
            "high",
            "actual min",
            "median",
            "max",
            "inside",
            "done",
        ],
        rows,
        title=f"The estimate's range against {SEEDS} seeded runs per strategy "
        "(drop 3%, invalid 2%, truncated 2%, 5xx 2%)",
    )
    records = plan[0].records
    chosen: StrategyEstimate = deadline["chosen"]
    rpm, tpm = DEADLINE_LIMITS
    expected, longest = chosen.times(rpm, tpm)
    print(
        f"\n--deadline {DEADLINE_MINUTES:g} min at {rpm:,.0f} RPM / {tpm:,.0f} TPM picks {chosen.name!r} "
        f"(expected {expected:.2f} min, at most {longest:.2f} min); the run took "
        f"{deadline['wall_s'] / 60:.2f} min and answered {deadline['done']} records"
    )
    print()
    checks = [
        range_verdict("the range holds the actual cost", held),
        verdict(
            "the deadline's pick meets it",
            deadline["wall_s"] <= DEADLINE_MINUTES * 60 and deadline["done"] == records,
            f"{deadline['wall_s']:.0f} s of {DEADLINE_MINUTES * 60:.0f} s, "
            f"{deadline['done']}/{records} answered",
        ),
    ]
    print("\n".join(checks))
    return 0


def report_priming(records: int, single: dict[str, Any], runs: dict[bool, dict[str, Any]]) -> int:
    """Anthropic batch, primed against cold: what each line read and wrote, and what it cost."""
    haiku = PriceTable.load().get("claude-haiku-4-5")
    assert haiku is not None, "claude-haiku-4-5 is in the shipped price table"
    rows, shares = [], {}
    for warm, totals in runs.items():
        lines = totals["cache_rows"][1:] if warm else totals["cache_rows"]
        prefix = max((written for _, _, written in totals["cache_rows"]), default=0)
        read = sum(r for _, r, _ in lines)
        shares[warm] = read / (prefix * len(lines)) if prefix and lines else 0.0
        at_haiku = _haiku_cost(haiku, totals)
        rows.append(
            [
                "primed" if warm else "cold",
                totals["requests"],
                totals["prompt_tokens"],
                totals["cached_tokens"],
                totals["cache_write_tokens"],
                pct(shares[warm]),
                pct(read / max(1, sum(p for p, _, _ in lines))),
                f"{totals['done']}/{records}",
                f"${totals['cost'] / records * 1000:.4f}",
                pct(totals["cost"] / single["cost"]),
                f"${at_haiku / records * 1000:.4f}",
            ]
        )
    print_table(
        [
            "Anthropic batch",
            "requests",
            "input tok",
            "read",
            "written",
            "prefix read",
            "input read",
            "done",
            "$/1k rec",
            "of single",
            "$/1k at Haiku 4.5",
        ],
        rows,
        title="Packed + batch + cached prefix (prefix read: of the cacheable prefix, per line after "
        "the primer; input read: of all input tokens)",
    )
    primed, cold = runs[True], runs[False]
    ratio = primed["cost"] / single["cost"]
    haiku_primed, haiku_cold = _haiku_cost(haiku, primed), _haiku_cost(haiku, cold)
    print()
    checks = [
        verdict(
            "packed + batch + primed cache vs one per request",
            ratio <= 0.06 and primed["done"] == records,
            f"{pct(ratio)} (≤ 6%), {primed['done']}/{records} answered",
        ),
        verdict(
            "primed: lines after the primer read the prefix",
            shares[True] >= 0.90,
            f"{pct(shares[True])} of the cacheable prefix (≥ 90%)",
        ),
        verdict("cold: no line reads the cache", shares[False] == 0.0, f"{pct(shares[False])} (0%)"),
        verdict(
            "priming pays for itself",
            primed["cost"] < cold["cost"] and haiku_primed < haiku_cold,
            f"sim-1 ${primed['cost']:.5f} vs ${cold['cost']:.5f} cold; at Haiku 4.5 rates "
            f"${haiku_primed:.4f} vs ${haiku_cold:.4f} ({pct(haiku_primed / haiku_cold)})",
        ),
    ]
    print("\n".join(checks))
    return 0


def report_pilot(
    pilot: Pilot,
    plan: list[StrategyEstimate],
    unpiloted: list[StrategyEstimate],
    seeded: dict[str, list[dict[str, Any]]],
) -> int:
    """The plan after a pilot: its narrower ranges against the same seeded runs."""
    spent = "unknown" if pilot.cost is None else f"${pilot.cost:.5f}"
    print(
        f"\npilot: {pilot.records} records in {pilot.requests} requests ({spent}), "
        f"{pilot.mean:.2f} output tokens per record (p10 {pilot.quantile(0.1):.2f}, "
        f"p90 {pilot.quantile(0.9):.2f}), {pilot.resent:.1%} resent"
    )
    rows, held = [], {}
    for strategy, before in zip(plan, unpiloted, strict=True):
        runs = seeded.get(strategy.name)
        if not runs:
            continue
        low, high = strategy.low or 0.0, strategy.high or 0.0
        held[strategy.name] = runs_inside(strategy, runs)
        rows.append(
            [
                strategy.name,
                f"${low:.5f}",
                f"${strategy.cost or 0:.5f}",
                f"${high:.5f}",
                pct((high - low) / ((before.high or 0.0) - (before.low or 0.0))),
                f"{held[strategy.name]}/{len(runs)}",
            ]
        )
    print_table(
        ["after a pilot", "low", "expected", "high", "width of the range without it", "inside"],
        rows,
        title=f"The plan after a {PILOT}-record pilot, against the same seeded runs",
    )
    print()
    print(range_verdict("the piloted range holds the actual cost", held))
    return 0


def _haiku_cost(price: Price, totals: dict[str, Any]) -> float:
    """The job's tokens at another model's rates (every write is a batch line's, of an hour)."""
    usage = Usage(
        prompt_tokens=totals["prompt_tokens"],
        completion_tokens=totals["completion_tokens"],
        cached_tokens=totals["cached_tokens"],
        cache_write_tokens=totals["cache_write_tokens"],
        cache_write_1h_tokens=totals["cache_write_tokens"],
    )
    return price.cost(usage, batch=True)


def report(
    records: int,
    predicted: dict[str, StrategyEstimate],
    actual: dict[str, dict[str, Any]],
    names: tuple[str, ...],
    budget: float,
    capped: dict[str, Any],
    rerun: dict[str, Any],
) -> int:
    single = actual[names[0]]["cost"] / records
    rows = []
    errors: dict[str, float] = {}
    for name in names:
        run_, guess = actual[name], predicted[name]
        per = run_["cost"] / records
        guessed = (guess.cost or 0.0) / records
        errors[name] = abs(guessed - per) / per
        rows.append(
            [
                name,
                run_["requests"],
                run_["prompt_tokens"],
                run_["cached_tokens"],
                run_["completion_tokens"],
                f"{run_['done']}/{records}",
                f"${per * 1000:.4f}",
                pct(per / single),
                f"${guessed * 1000:.4f}",
                guess.input_tokens + guess.output_tokens,
                pct(errors[name]),
            ]
        )
    print_table(
        [
            "strategy",
            "requests",
            "input tok",
            "cached",
            "output tok",
            "done",
            "$/1k rec",
            "of single",
            "est $/1k rec",
            "est tokens",
            "est error",
        ],
        rows,
        title="Cost per record: real runs on the simulator against the dry-run estimate",
    )
    full = actual[names[1]]
    # What the budget must hold back for the next request: its whole answer budget used.
    packed = predicted[names[1]]
    answer_budget = packed.charged_tokens - packed.input_tokens
    price = PriceTable.load().get("sim-1")
    assert price is not None, "sim-1 is in the shipped price table"
    worst_request = price.cost(Usage(packed.input_tokens, answer_budget)) / packed.requests
    print_table(
        ["run", "budget", "spent", "of budget", "requests", "done", "stopped"],
        [
            [
                "--max-cost ½ estimate",
                f"${budget:.5f}",
                f"${capped['cost']:.5f}",
                pct(capped["cost"] / budget),
                capped["requests"],
                capped["done"],
                capped["stopped"],
            ],
            [
                "re-run, larger budget",
                f"${budget * 4:.5f}",
                f"${rerun['cost']:.5f}",
                None,
                rerun["requests"],
                rerun["done"],
                rerun["stopped"],
            ],
            [
                "uncapped packed run",
                None,
                f"${full['cost']:.5f}",
                None,
                full["requests"],
                full["done"],
                False,
            ],
        ],
        title="Budget cap (spent = total paid by the job so far, from its store)",
    )
    packed_ratio = actual[names[1]]["cost"] / actual[names[0]]["cost"]
    batch_ratio = actual[names[2]]["cost"] / actual[names[0]]["cost"]
    caching_ratio = actual[names[3]]["cost"] / actual[names[0]]["cost"]
    flex_ratio = actual[names[4]]["cost"] / actual[names[0]]["cost"]
    extra = rerun["cost"] - full["cost"]
    print()
    checks = [
        verdict(
            "packed 20 vs one per request",
            packed_ratio <= 0.25,
            f"{pct(packed_ratio)} of its cost per record (≤ 25%)",
        ),
        verdict("packed + batch API vs one per request", batch_ratio <= 0.13, f"{pct(batch_ratio)} (≤ 13%)"),
        verdict(
            "packed + caching pays less than packed",
            caching_ratio < packed_ratio,
            f"{pct(caching_ratio)} of one per request, against {pct(packed_ratio)}",
        ),
        verdict(
            "packed + caching + flex vs one per request",
            flex_ratio <= 0.08 and actual[names[4]]["done"] == records,
            f"{pct(flex_ratio)} (≤ 8%), {actual[names[4]]['done']}/{records} answered",
        ),
        verdict(
            "estimate within 10% of each run",
            max(errors.values()) <= 0.10,
            ", ".join(f"{name}: {pct(err)}" for name, err in errors.items()),
        ),
        verdict(
            "budget stop never above the budget",
            capped["stopped"] and capped["cost"] <= budget,
            f"${capped['cost']:.5f} of ${budget:.5f}",
        ),
        verdict(
            "budget stop within one request of the budget",
            budget - capped["cost"] <= worst_request,
            f"${budget - capped['cost']:.6f} left; the next request must reserve up to ${worst_request:.6f}"
            f" (one request actually cost up to ${capped['max_request_cost']:.6f})",
        ),
        verdict(
            "re-run finishes without paying twice",
            not rerun["stopped"] and rerun["done"] == records and abs(extra) <= 0.02 * full["cost"],
            f"total ${rerun['cost']:.5f} vs ${full['cost']:.5f} uncapped ({pct(extra / full['cost'])} apart;"
            f" {rerun['requests']} requests vs {full['requests']})",
        ),
    ]
    print("\n".join(checks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
