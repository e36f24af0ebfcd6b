"""Rate-limit tiers (issue 14, item 5): llmbatch's defaults against one-request-per-record scripts.

A matrix of provider limits x latency x job length, every run on a fresh simulator
process (``llmbatch sim serve``, so every run starts on a fresh quota):

    limits    t1: 500 RPM / 200k TPM,  t2: 5,000 RPM / 4M TPM,  t3: 30,000 RPM / 150M TPM
    latency   zero: none;  lat: 0.4 s + 12 ms per answer token   (x --time-scale, default 1)
    records   3,000 and 30,000 short one-line descriptions of software packages

The task classifies each description into one of 57 categories (a JSON enum). In each
cell four numbers are compared:

1. **llmbatch defaults**: ``run_job`` with ``RunOptions()`` and the task, nothing else:
   adaptive pack size, no concurrency cap, no ``rpm``/``tpm`` (the limits are learnt
   from the simulator's ``x-ratelimit-*`` headers), no cache: what ``llmbatch run``
   does with no tuning flags.
2. **AsyncOpenAI + asyncio.Semaphore**: the official SDK, one request per record with a
   ``json_schema`` response format for one answer and ``max_tokens`` sized to one answer;
   a 429 sleeps its ``retry-after`` and tries again. It runs at a few concurrencies
   (16, 64, 256 and the one Little's law gives for the limits), skipping those a
   prediction shows cannot be the fastest; the best one counts.
3. **paced dispatcher**, after the idea of the OpenAI cookbook's
   api_request_parallel_processor (own code): request and token buckets at the RPM and
   TPM (full at the start, refilled continuously, capped at a minute's allowance), one
   request per record dispatched per 1 ms tick when both buckets hold its cost (prompt
   tokens counted as the simulator counts them + max_tokens), no concurrency cap (aiohttp,
   unlimited pool); a 429 puts the record back at the head of the queue and pauses
   dispatch for its retry-after (15 s without one, the cookbook's pause).
4. **the analytic bound** for the packed workload, from full buckets, as in
   bench/throughput.py (``_common.run_bound``): n requests of b records charged U tokens
   (prompt + max_tokens, as OpenAI and the simulator count them) take at least
   ``max(60(n - RPM)/RPM + L, 60(U - TPM)/TPM + L, L)`` seconds, with b, U and the mean
   latency L measured on llmbatch's run. Without a cap the latency term is one round trip,
   so with zero latency and no limit binding the bound is unbounded: such a cell can only
   pass by being shown CPU-bound.

One-per-record scripts that would take longer than ``--budget`` seconds run on a subset
and are extrapolated: past the buckets' initial allowance (tier 1, and tier 2 at 30,000)
the subset holds 1.3x that allowance and the remaining records go at the rate of its
second half (the steady, rate-limited rate); otherwise (CPU- or latency-bound, tier 3 at
30,000) 6,000 records are run and the rest go at the second half's rate too. A subset run
serves every cell of its tier and latency that needs the same subset. The table says how
each rate was obtained.

Acceptance, per cell (a PASS/FAIL line each): llmbatch >= 90% of the bound (or the cell
is CPU-bound: client + simulator CPU >= 85% of all cores x wall time, or either
single-threaded process >= 90% of one core); >= 3x the best one-per-record script in
every TPM-bound cell (the bound's binding term is TPM) and never slower in any cell;
< 1% of the requests the simulator saw answered 429; every record ok.

The first check's line also splits llmbatch's wall time into three phases, from the
times its requests were sent and answered and this process's CPU sampled every 20 ms:
the wait for the first answer (the limits are read from its headers, so slow start holds
the first wave to a few requests), the dispatch of the rest (with the share of one core
the client used meanwhile: near 100% means the client's CPU set its pace) and the tail
(the last packs' round trip). The bound counts one round trip; a run can miss it by the
first phase alone.

Time: the time scale shrinks latency only; the rate limits stay per real minute. At
the default scale 1 (real latency: a 50-record pack answers in about 7 s) ``--quick``
takes about 6 minutes on a 2-core machine and the whole matrix about 35-40, over 20 of
which are the two tier-1 cells of 30,000 records: their ~2.6M charged tokens at 200k TPM
cannot take less than ~12 minutes each, whatever the time scale.

``--only`` takes cells or parts of their keys (``TIER-LATENCY-RECORDS``): ``t1`` runs the
tier-1 cells, ``t2-lat`` tier 2 with latency, ``30k`` every 30,000-record cell.

``--batch-size-1`` also runs llmbatch with ``--batch-size 1`` on the records the scripts
ran (extrapolated the same way) and judges it against the best of them: >= 0.95x its
records/min, and tokens charged per record within 5% of its.

Prints a table per cell, PASS/FAIL lines, and a summary; always exits 0.

    .venv/bin/python bench/tiers.py [--quick] [--only t1,t3-lat-3k] [--records 3000,30000]
                                    [--time-scale 1] [--budget 30] [--concurrency 16,64,256]
                                    [--batch-size-1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
from _common import (
    RunBound,
    Simulator,
    pct,
    print_table,
    run_bound,
    simulator_cpu_seconds,
    verdict,
    write_jsonl,
)

from llmbatch._exceptions import RateLimited
from llmbatch._jobs.job import JobSpec, run_job
from llmbatch._options import RunOptions
from llmbatch._pack.tokens import MESSAGE_OVERHEAD, count_tokens
from llmbatch._task import Task, canonical_json
from llmbatch._types import Completion, Request
from llmbatch.providers import ProviderConfig
from llmbatch.providers.openai import OpenAIProvider

# -- the workload: 57 categories, one-line descriptions ----------------------------------

CATEGORIES: dict[str, tuple[str, ...]] = {
    "audio": ("audio decoding and resampling", "a synthesizer and audio effects chain"),
    "authentication": ("OAuth2 and OpenID Connect login flows", "session and token authentication"),
    "bioinformatics": ("reading FASTA and BAM files", "sequence alignment of DNA reads"),
    "caching": ("an in-memory cache with TTL eviction", "memoizing function results to Redis"),
    "cli": ("building command-line tools with subcommands", "argument parsing for terminal apps"),
    "compression": ("zstd and brotli compression", "streaming gzip archives"),
    "concurrency": ("thread pools and futures", "lock-free queues and actors"),
    "configuration": ("loading settings from TOML and env vars", "layered config files"),
    "cryptography": ("AES encryption and key derivation", "signatures with Ed25519 keys"),
    "databases": ("a PostgreSQL driver", "connection pooling for SQLite and MySQL"),
    "dataframes": ("columnar tables with group-by and joins", "lazy dataframes over Arrow"),
    "datetime": ("timezone-aware dates and durations", "parsing human dates like next Friday"),
    "debugging": ("an interactive debugger with breakpoints", "post-mortem stack inspection"),
    "deployment": ("shipping containers to Kubernetes", "zero-downtime releases to servers"),
    "documentation": ("generating API docs from docstrings", "a docs site builder"),
    "email": ("sending SMTP mail with attachments", "parsing MIME messages"),
    "embedded": ("firmware for microcontrollers", "drivers for I2C and SPI sensors"),
    "finance": ("pricing options and bonds", "portfolio returns and risk metrics"),
    "formatting": ("an opinionated code formatter", "reformatting source files on save"),
    "games": ("a 2D game loop with sprites", "tile maps and collision for games"),
    "geospatial": ("projections and shapefiles", "spatial joins on GPS coordinates"),
    "graphics": ("vector drawing and SVG export", "a GPU rendering pipeline"),
    "gui": ("desktop windows, buttons and dialogs", "native widgets for desktop apps"),
    "http": ("an HTTP client with retries", "HTTP/2 requests and connection reuse"),
    "i18n": ("translating UI strings with gettext", "plural rules and locale formats"),
    "imaging": ("resizing and cropping photos", "reading EXIF data from JPEG files"),
    "linting": ("static checks for common bugs", "style warnings in code review"),
    "logging": ("structured JSON log records", "log rotation and handlers"),
    "markdown": ("rendering Markdown to HTML", "CommonMark parsing with extensions"),
    "messaging": ("publishing events to Kafka", "a pub/sub client for MQTT"),
    "metrics": ("Prometheus counters and histograms", "exporting service metrics"),
    "ml": ("gradient-boosted trees", "training classifiers on tabular data"),
    "mocking": ("fake objects and patched calls in tests", "stubbing HTTP responses"),
    "networking": ("raw sockets and TCP servers", "DNS lookups and packet capture"),
    "notebooks": ("interactive notebook widgets", "running notebooks as reports"),
    "numerics": ("fast n-dimensional arrays", "linear algebra and FFTs"),
    "orm": ("mapping classes to SQL tables", "query builders and migrations"),
    "packaging": ("building wheels and publishing releases", "dependency resolution and lock files"),
    "parsing": ("a parser combinator library", "grammars and syntax trees"),
    "pdf": ("generating PDF invoices", "extracting text and tables from PDF files"),
    "plotting": ("line charts and histograms", "interactive plots in the browser"),
    "profiling": ("a sampling CPU profiler", "memory allocation tracking and flame graphs"),
    "queues": ("background job workers", "a distributed task queue with retries"),
    "robotics": ("motion planning for robot arms", "ROS nodes and sensor fusion"),
    "scheduling": ("cron-like periodic jobs", "running tasks at given times"),
    "scraping": ("crawling web pages and extracting links", "headless browser scraping"),
    "search": ("full-text indexing and ranking", "fuzzy search over documents"),
    "security": ("scanning dependencies for vulnerabilities", "sandboxing untrusted code"),
    "serialization": ("fast JSON and MessagePack encoding", "schema-based binary formats"),
    "spreadsheets": ("reading and writing Excel workbooks", "formulas in CSV sheets"),
    "statistics": ("hypothesis tests and regressions", "probability distributions and sampling"),
    "storage": ("an S3-compatible object store client", "a key-value store on disk"),
    "templating": ("HTML templates with inheritance", "rendering text from templates"),
    "testing": ("a test runner with fixtures", "property-based tests"),
    "tracing": ("distributed tracing spans", "OpenTelemetry instrumentation"),
    "typing": ("runtime type checks", "static type stubs and generics"),
    "video": ("transcoding video streams", "extracting frames from MP4 files"),
}
LABELS = list(CATEGORIES)
assert len(LABELS) == 57, len(LABELS)

_NAME_PARTS = ("py", "fast", "tiny", "neo", "open", "quick", "deep", "lib", "hyper", "micro", "auto", "smart")
_NAME_ENDS = ("kit", "ly", "io", "core", "flow", "box", "ify", "lab", "hub", "wise", "craft", "forge")
_ADJECTIVES = (
    "a small library for",
    "a fast toolkit for",
    "a pure-Python package for",
    "a framework for",
    "a minimal module for",
    "a typed library for",
    "an async-first package for",
    "a tool for",
)
_SUFFIXES = (
    "",
    " with zero dependencies",
    " built on asyncio",
    ", MIT licensed",
    " for Python 3.12",
    ", written in Rust",
    " with a plugin system",
    ", no C extensions",
)

INSTRUCTIONS = (
    "Classify each software package, from its one-line description, into the one category that fits it best."
)
OUTPUT: dict[str, Any] = {
    "type": "object",
    "properties": {"category": {"type": "string", "enum": LABELS}},
    "required": ["category"],
    "additionalProperties": False,
}
SINGLE_MAX_TOKENS = max(count_tokens(json.dumps({"category": c}, separators=(",", ":"))) for c in LABELS) + 2
"""The one-per-record scripts' max_tokens: the longest answer, plus two tokens of slack."""


def descriptions(count: int, seed: int = 14) -> list[dict[str, str]]:
    """``count`` one-line package descriptions {id, text}, deterministic for a seed."""
    rng = random.Random(seed)
    out: list[dict[str, str]] = []
    for i in range(count):
        label = rng.choice(LABELS)
        name = rng.choice(_NAME_PARTS) + rng.choice(_NAME_ENDS)
        version = f"{rng.randint(0, 4)}.{rng.randint(0, 19)}"
        what = rng.choice(CATEGORIES[label])
        text = f"{name} {version}: {rng.choice(_ADJECTIVES)} {what}{rng.choice(_SUFFIXES)}."
        out.append({"id": f"pkg{i:05d}", "text": text})
    return out


def task() -> Task:
    return Task(instructions=INSTRUCTIONS, input="{text}", output=OUTPUT, id="id")


def single_messages(record: dict[str, str]) -> list[dict[str, str]]:
    return [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": record["text"]}]


def single_body(record: dict[str, str]) -> dict[str, Any]:
    """One record's Chat Completions body, as a plain script sends it."""
    return {
        "model": "sim-1",
        "messages": single_messages(record),
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": OUTPUT, "strict": True},
        },
        "max_tokens": SINGLE_MAX_TOKENS,
        "temperature": 0,
    }


_SCHEMA_TOKENS = count_tokens(canonical_json(OUTPUT))


def single_charge(record: dict[str, str]) -> int:
    """Tokens a one-record request is charged: its prompt (as OpenAI and the simulator count
    it: each message's content + overhead, plus the schema sent along) + max_tokens."""
    prompt = sum(count_tokens(m["content"]) + MESSAGE_OVERHEAD for m in single_messages(record))
    return prompt + _SCHEMA_TOKENS + SINGLE_MAX_TOKENS


def valid_answer(content: str | None) -> bool:
    try:
        value = json.loads(content or "")
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and value.get("category") in CATEGORIES


# -- the matrix ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tier:
    key: str
    rpm: int
    tpm: int

    @property
    def label(self) -> str:
        return f"{self.rpm:,} RPM / {_short(self.tpm)} TPM"


@dataclass(frozen=True, slots=True)
class Latency:
    key: str
    base: float
    per_output: float

    @property
    def label(self) -> str:
        if not (self.base or self.per_output):
            return "zero latency"
        return f"{self.base:g} s + {self.per_output * 1000:g} ms/answer token"


@dataclass(frozen=True, slots=True)
class Cell:
    tier: Tier
    latency: Latency
    records: int

    @property
    def parts(self) -> tuple[str, str, str]:
        return (self.tier.key, self.latency.key, _short(self.records))

    @property
    def key(self) -> str:
        return "-".join(self.parts)


TIERS = (Tier("t1", 500, 200_000), Tier("t2", 5_000, 4_000_000), Tier("t3", 30_000, 150_000_000))
LATENCIES = (Latency("zero", 0.0, 0.0), Latency("lat", 0.4, 0.012))

NCPU = os.cpu_count() or 1
CPU_RATE = 500.0
"""One-record requests/s this 2-core machine's client and simulator manage together (measured
~600-700 with the SDK): only for choosing subsets and skipping hopeless concurrencies."""
CPU_SUBSET = 6000
ANSWER_TOKENS_SEEN = 9
"""Answer tokens of one record (``{"category":"..."}``), for the predicted latency of one request."""


def _short(n: int) -> str:
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 1000 and n % 100 == 0:
        return f"{n / 1000:g}k"
    return str(n)


def sim_flags(cell: Cell, time_scale: float) -> list[str]:
    return [
        "--rate-limit-rpm",
        str(cell.tier.rpm),
        "--rate-limit-tpm",
        str(cell.tier.tpm),
        "--base-latency",
        str(cell.latency.base),
        "--per-output-token",
        str(cell.latency.per_output),
        "--time-scale",
        str(time_scale),
    ]


def selected(cell: Cell, only: Sequence[str]) -> bool:
    """``--only``: a selector picks the cells having every dash-separated part of it (t1, t2-lat)."""
    return not only or any(set(s.split("-")) <= set(cell.parts) for s in only)


# -- one run on a fresh simulator -----------------------------------------------------------


@dataclass(slots=True)
class Tally:
    """What a contender counts while it runs (filled in by the contender)."""

    t0: float = 0.0
    ok: int = 0
    failed: int = 0
    finished: list[float] = field(default_factory=list)
    """Seconds from the start at which each record was answered."""
    rate_limited: int = 0
    """429s the client saw."""
    max_tokens: int = 0
    """Sum of max_tokens over the requests the simulator admitted."""
    latencies: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


Contender = Callable[[str, Tally], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Phases:
    """A llmbatch run in three phases: waiting for the first answer (the limits are not
    known before its headers, so slow start holds the first wave to a few requests), the
    dispatch of the rest, and the tail (the last packs' round trip)."""

    discovery: float
    dispatch: float
    tail: float
    dispatch_cpu: float
    """Client CPU seconds during the dispatch phase (every thread of this process)."""

    @property
    def dispatch_busy(self) -> float:
        """Share of one core the client used while it dispatched."""
        return self.dispatch_cpu / self.dispatch if self.dispatch > 0 else 0.0

    @classmethod
    def of(cls, tally: Tally, sampler: CpuSampler) -> Phases | None:
        extra = tally.extra
        if not {"first_send", "first_answer", "last_send"} <= extra.keys():
            return None
        first, answer, last = extra["first_send"], extra["first_answer"], extra["last_send"]
        end = tally.t0 + float(extra.get("wall", 0.0))
        answer = min(answer, last)
        return cls(
            discovery=answer - first,
            dispatch=last - answer,
            tail=max(0.0, end - last),
            dispatch_cpu=sampler.cpu_at(last) - sampler.cpu_at(answer),
        )

    def text(self) -> str:
        return (
            f"first answer after {self.discovery:.2f} s, dispatch {self.dispatch:.2f} s at "
            f"{self.dispatch_busy * 100:.0f}% of a core, tail {self.tail:.2f} s"
        )


@dataclass(slots=True)
class Run:
    name: str
    records: int
    wall: float
    tally: Tally
    sim: dict[str, Any]
    client_cpu: float
    sim_cpu: float | None
    machine_busy: float | None
    phases: Phases | None
    """Share of all cores busy during the run, every process on the machine counted."""

    @property
    def charged(self) -> float:
        return float(self.sim["prompt_tokens"] + self.tally.max_tokens)

    @property
    def admitted(self) -> int:
        return int(self.sim["requests"] - self.sim["rate_limited"])

    @property
    def latency(self) -> float | None:
        if "latency_mean_s" in self.tally.extra:
            value: float | None = self.tally.extra["latency_mean_s"]
            return value
        return statistics.fmean(self.tally.latencies) if self.tally.latencies else None

    @property
    def share_429(self) -> float:
        return float(self.sim["rate_limited"]) / max(1, int(self.sim["requests"]))

    @property
    def cores(self) -> float:
        return (self.client_cpu + (self.sim_cpu or 0.0)) / self.wall if self.wall else 0.0

    @property
    def others(self) -> float | None:
        """Cores other processes kept busy meanwhile (the machine is shared)."""
        if self.machine_busy is None:
            return None
        return max(0.0, self.machine_busy * NCPU - self.cores)

    @property
    def cpu_bound(self) -> bool:
        """Client + simulator near every core, or either single-threaded process near one."""
        sim = self.sim_cpu or 0.0
        return self.cores >= 0.85 * NCPU or self.client_cpu >= 0.9 * self.wall or sim >= 0.9 * self.wall


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of every core since boot, from /proc/stat."""
    try:
        line = Path("/proc/stat").read_text().split("\n", 1)[0]
    except OSError:
        return None
    values = [float(v) for v in line.split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)
    total = sum(values[:8])
    return total - idle, total


class CpuSampler(threading.Thread):
    """This process's CPU time (every thread) every 20 ms, to tell which phase of a run
    was CPU-bound: the totals alone mix the busy dispatch with the idle wait for answers."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.samples.append((time.perf_counter(), time.process_time()))

    def cpu_at(self, moment: float) -> float:
        """CPU seconds at ``moment`` (perf_counter), by the nearest earlier sample."""
        best = self.samples[0][1] if self.samples else 0.0
        for at, cpu in self.samples:
            if at > moment:
                break
            best = cpu
        return best


def measure(name: str, flags: Sequence[str], records: int, contender: Contender) -> Run:
    """Run ``contender`` against a fresh simulator started with ``flags``."""
    tally = Tally()
    sampler = CpuSampler()
    with Simulator(*flags) as sim:
        sim_cpu0 = simulator_cpu_seconds(sim)
        machine0 = _machine_times()
        cpu0 = _client_cpu()
        sampler.start()
        tally.t0 = time.perf_counter()
        asyncio.run(contender(sim.base_url, tally))
        wall = time.perf_counter() - tally.t0
        tally.extra["wall"] = wall
        sampler.done.set()
        sampler.join()
        cpu1 = _client_cpu()
        machine1 = _machine_times()
        sim_cpu1 = simulator_cpu_seconds(sim)
        stats = sim.stats()
    busy = None
    if machine0 and machine1 and machine1[1] > machine0[1]:
        busy = (machine1[0] - machine0[0]) / (machine1[1] - machine0[1])
    return Run(
        name=name,
        records=records,
        wall=wall,
        tally=tally,
        sim=stats,
        client_cpu=cpu1 - cpu0,
        phases=Phases.of(tally, sampler),
        sim_cpu=None if sim_cpu0 is None or sim_cpu1 is None else sim_cpu1 - sim_cpu0,
        machine_busy=busy,
    )


# -- contender 1: llmbatch with its defaults --------------------------------------------------


class ChargeCountingProvider(OpenAIProvider):
    """The OpenAI-compatible provider exactly as a user gets it; it only adds up the
    ``max_tokens`` of the requests the server admitted (for the tokens charged)."""

    def __init__(self, config: ProviderConfig, tally: Tally) -> None:
        super().__init__(config)
        self.tally = tally

    async def complete(self, request: Request) -> Completion:
        admitted = True
        now = time.perf_counter()
        self.tally.extra.setdefault("first_send", now)
        self.tally.extra["last_send"] = now
        try:
            completion = await super().complete(request)
            self.tally.extra.setdefault("first_answer", time.perf_counter())
            return completion
        except RateLimited:
            admitted = False
            raise
        finally:
            if admitted:
                self.tally.max_tokens += request.max_tokens


def llmbatch_defaults(data: Path, job_dir: Path, options: RunOptions | None = None) -> Contender:
    """``run_job`` with ``options`` (by default, none: what ``llmbatch run`` does untuned)."""

    async def contender(base_url: str, tally: Tally) -> None:
        config = ProviderConfig(base_url=base_url, api_key="sk-bench", model="sim-1")
        spec = JobSpec(
            task=task(),
            input=data,
            output=None,
            job_dir=job_dir,
            options=options or RunOptions(),
            cache_dir=None,
        )
        result = await run_job(spec, ChargeCountingProvider(config, tally))
        summary = result.metrics.summary()
        tally.ok = result.counts.get("done", 0)
        tally.failed = sum(n for status, n in result.counts.items() if status != "done")
        tally.rate_limited = int(summary["rate_limited"])
        tally.extra |= {
            "latency_mean_s": summary["latency_mean_s"],
            "requests": summary["requests"],
            "mean_pack": summary["mean_pack_size"],
            "pack_sizes": dict(sorted(result.metrics.pack_sizes.items())),
            "counts": result.counts,
            "elapsed": result.metrics.elapsed,
        }

    return contender


# -- contender 2: AsyncOpenAI + asyncio.Semaphore, one request per record ----------------------


def _retry_after(headers: Any, default: float) -> float:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value is not None:
            try:
                return float(value) * scale
            except ValueError:
                continue
    return default


def semaphore_script(records: Sequence[dict[str, str]], concurrency: int) -> Contender:
    async def contender(base_url: str, tally: Tally) -> None:
        gate = asyncio.Semaphore(concurrency)
        async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0) as client:

            async def one(record: dict[str, str]) -> None:
                errors = 0
                async with gate:
                    while True:
                        started = time.perf_counter()
                        try:
                            response = await client.chat.completions.create(**single_body(record))
                        except openai.RateLimitError as exc:
                            tally.rate_limited += 1
                            await asyncio.sleep(_retry_after(exc.response.headers, 1.0))
                            continue
                        except (openai.APIConnectionError, openai.InternalServerError):
                            errors += 1
                            if errors >= 5:
                                tally.failed += 1
                                return
                            await asyncio.sleep(1.0)
                            continue
                        now = time.perf_counter()
                        tally.latencies.append(now - started)
                        tally.max_tokens += SINGLE_MAX_TOKENS
                        if valid_answer(response.choices[0].message.content):
                            tally.ok += 1
                            tally.finished.append(now - tally.t0)
                        else:
                            tally.failed += 1
                        return

            await asyncio.gather(*(one(record) for record in records))

    return contender


# -- contender 3: an RPM/TPM-paced dispatcher (the cookbook's idea) ----------------------------


class Bucket:
    """``per_minute`` units, full at the start, refilled at ``per_minute / 60`` a second."""

    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self.level = per_minute
        self.updated = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now


PAUSE_AFTER_429 = 15.0
"""The cookbook's pause after a rate-limit error, when the server says nothing."""


def paced_dispatcher(records: Sequence[dict[str, str]], rpm: float, tpm: float) -> Contender:
    async def contender(base_url: str, tally: Tally) -> None:
        url = base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": "Bearer sk-bench"}
        queue: deque[tuple[dict[str, str], int]] = deque((record, 0) for record in records)
        in_flight: set[asyncio.Task[None]] = set()
        pause_until = 0.0
        connector = aiohttp.TCPConnector(limit=0)  # no cap: the buckets alone pace it
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def send(record: dict[str, str], errors: int) -> None:
                nonlocal pause_until
                started = time.perf_counter()
                status, data, reply_headers = 0, None, None
                try:
                    async with session.post(url, json=single_body(record), headers=headers) as response:
                        status, reply_headers = response.status, response.headers
                        data = await response.json(content_type=None)
                except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError):
                    status = 0
                now = time.perf_counter()
                if status == 200 and isinstance(data, dict):
                    tally.latencies.append(now - started)
                    tally.max_tokens += SINGLE_MAX_TOKENS
                    if valid_answer(data["choices"][0]["message"]["content"]):
                        tally.ok += 1
                        tally.finished.append(now - tally.t0)
                    else:
                        tally.failed += 1
                elif status == 429:
                    tally.rate_limited += 1
                    pause = _retry_after(reply_headers, PAUSE_AFTER_429)
                    pause_until = max(pause_until, time.monotonic() + pause)
                    queue.appendleft((record, errors))
                elif errors + 1 < 5:
                    queue.appendleft((record, errors + 1))
                else:
                    tally.failed += 1

            start = time.monotonic()
            requests, tokens = Bucket(rpm, start), Bucket(tpm, start)
            while queue or in_flight:
                now = time.monotonic()
                if queue and now >= pause_until:
                    record, errors = queue[0]
                    cost = single_charge(record)
                    requests.refill(now)
                    tokens.refill(now)
                    if requests.level >= 1 and tokens.level >= cost:
                        requests.level -= 1
                        tokens.level -= cost
                        queue.popleft()
                        sent = asyncio.create_task(send(record, errors))
                        in_flight.add(sent)
                        sent.add_done_callback(in_flight.discard)
                await asyncio.sleep(0.001)  # one dispatch per tick, as the cookbook's loop

    return contender


# -- subsets, extrapolation and the concurrency to try ------------------------------------------


def limits_seconds(n: int, tier: Tier, charge: float, latency: float) -> float:
    """The least time the limits allow ``n`` one-record requests from full buckets."""
    t_rpm = 60 * max(0, n - tier.rpm) / tier.rpm
    t_tpm = 60 * max(0.0, n * charge - tier.tpm) / tier.tpm
    return max(t_rpm, t_tpm) + latency


def predicted_seconds(n: int, tier: Tier, charge: float, latency: float, concurrency: int | None) -> float:
    """A one-per-record run's least time from full buckets, at the CPU rate and ``concurrency``."""
    t_latency = math.ceil(n / concurrency) * latency if concurrency else latency
    return max(limits_seconds(n, tier, charge, latency), t_latency, n / CPU_RATE)


def subset_size(n: int, tier: Tier, charge: float, budget: float) -> int:
    """How many records a one-per-record script runs for a job of ``n`` (see the docstring)."""
    if predicted_seconds(n, tier, charge, 0.0, None) <= budget:
        return n
    allowance = min(tier.rpm, tier.tpm / charge)
    if n > allowance:
        return min(n, math.ceil(allowance * 1.3))
    return min(n, CPU_SUBSET)


def concurrencies(n: int, tier: Tier, charge: float, latency: float, candidates: Sequence[int]) -> list[int]:
    """The candidates (and Little's law's: steady rate x latency x 1.5) that may be fastest."""
    steady = min(tier.rpm, tier.tpm / charge) / 60
    little = max(1, math.ceil(steady * latency * 1.5))
    pool = sorted({*candidates, little})
    times = {c: predicted_seconds(n, tier, charge, latency, c) for c in pool}
    best = min(times.values())
    return [c for c in pool if times[c] <= 1.25 * best]


def tail_rate(run: Run) -> float | None:
    """Records/s answered in the second half of the run."""
    done = sorted(run.tally.finished)
    if len(done) < 4:
        return None
    end = done[-1]
    half = end / 2
    count = sum(1 for t in done if t > half)
    return count / (end - half) if end > half else None


def rate_for(run: Run, n: int, tier: Tier, charge: float) -> tuple[float, str]:
    """(records/min for a job of ``n``, how it was obtained).

    A subset that never drained the buckets (too few requests in flight to reach the
    limits before it ended) would extrapolate past them: the time is then floored at
    the least the limits allow for ``n`` one-record requests from full buckets.
    """
    if run.records >= n:
        return run.tally.ok / run.wall * 60, "measured"
    tail = tail_rate(run)
    how = f"{_short(run.records)} run + 2nd-half rate"
    seconds = run.wall + (n - run.records) / tail if tail else n / max(1, run.tally.ok) * run.wall
    if not tail:
        how = f"{_short(run.records)} run, whole-run rate"
    floor = limits_seconds(n, tier, charge, run.latency or 0.0)
    if floor > 1.02 * seconds:
        how = f"{_short(run.records)} run; floored at the limits"
    return n / max(seconds, floor) * 60, how


# -- a cell -------------------------------------------------------------------------------------


@dataclass(slots=True)
class CellResult:
    cell: Cell
    llmbatch: Run | None = None
    scripts: list[tuple[Run, float, str]] = field(default_factory=list)
    """(run, records/min for the cell's length, how) of every one-per-record run."""
    bound: RunBound | None = None
    verdicts: list[tuple[bool, str]] = field(default_factory=list)
    error: str = ""

    @property
    def best_script(self) -> tuple[Run, float, str] | None:
        return max(self.scripts, key=lambda s: s[1]) if self.scripts else None


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, records: list[dict[str, str]]) -> None:
        self.args = args
        self.workdir = workdir
        self.records = records
        self.charge = statistics.fmean(single_charge(r) for r in records[:2000])
        self.cache: dict[tuple[Any, ...], Run] = {}
        self.files: dict[int, Path] = {}

    def data_file(self, n: int) -> Path:
        if n not in self.files:
            self.files[n] = self.workdir / f"packages-{n}.jsonl"
            write_jsonl(self.files[n], self.records[:n])
        return self.files[n]

    def script_run(self, cell: Cell, kind: str, m: int, concurrency: int | None) -> Run:
        key = (cell.tier, cell.latency, kind, m, concurrency)
        if key in self.cache:
            print(f"  {self.cache[key].name} on {m:,} records: reused from an earlier cell", flush=True)
            return self.cache[key]
        subset = self.records[:m]
        if kind == "sem":
            assert concurrency is not None
            name = f"AsyncOpenAI+Semaphore({concurrency})"
            contender = semaphore_script(subset, concurrency)
        else:
            name = "paced (RPM/TPM buckets)"
            contender = paced_dispatcher(subset, cell.tier.rpm, cell.tier.tpm)
        print(f"  {name} on {m:,} records ...", end=" ", flush=True)
        run = measure(name, sim_flags(cell, self.args.time_scale), m, contender)
        print(
            f"{run.wall:.1f} s, {run.tally.ok:,} ok, {run.tally.rate_limited:,} x 429, "
            f"{run.client_cpu:.1f} s client CPU",
            flush=True,
        )
        self.cache[key] = run
        return run

    def run_cell(self, cell: Cell) -> CellResult:
        out = CellResult(cell)
        n = cell.records
        print(f"\n== cell {cell.key}: {n:,} records, {cell.tier.label}, {cell.latency.label}", flush=True)
        job_dir = self.workdir / f"job-{cell.key}"
        print("  llmbatch defaults ...", end=" ", flush=True)
        run = measure(
            "llmbatch defaults",
            sim_flags(cell, self.args.time_scale),
            n,
            llmbatch_defaults(self.data_file(n), job_dir),
        )
        extra = run.tally.extra
        print(
            f"{run.wall:.1f} s, {run.tally.ok:,} ok, {extra['requests']} requests, "
            f"mean pack {extra['mean_pack'] or 0:.1f}, {run.sim['rate_limited']} x 429 (simulator)",
            flush=True,
        )
        out.llmbatch = run
        out.bound = run_bound(
            run.tally.ok or n,
            max(1, run.admitted),
            run.charged,
            rpm=cell.tier.rpm,
            tpm=cell.tier.tpm,
            latency=run.latency or 0.0,
        )
        m = subset_size(n, cell.tier, self.charge, self.args.budget)
        latency = (cell.latency.base + cell.latency.per_output * ANSWER_TOKENS_SEEN) * self.args.time_scale
        latency += 0.002  # a loopback round trip
        for c in concurrencies(m, cell.tier, self.charge, latency, self.args.concurrency):
            script = self.script_run(cell, "sem", m, c)
            out.scripts.append((script, *rate_for(script, n, cell.tier, self.charge)))
        script = self.script_run(cell, "paced", m, None)
        out.scripts.append((script, *rate_for(script, n, cell.tier, self.charge)))
        self.judge(out)
        if self.args.batch_size_1:
            self.judge_batch_size_1(out, m)
        return out

    def judge_batch_size_1(self, out: CellResult, m: int) -> None:
        """``--batch-size 1`` on the records the scripts ran: >= 0.95x the best one's rate, its
        tokens charged per record within 5% of theirs."""
        cell, best = out.cell, out.best_script
        assert best is not None
        print(f"  llmbatch --batch-size 1 on {m:,} records ...", end=" ", flush=True)
        options = RunOptions(batch_size=1)
        job_dir = self.workdir / f"job-{cell.key}-b1"
        run = measure(
            "llmbatch --batch-size 1",
            sim_flags(cell, self.args.time_scale),
            m,
            llmbatch_defaults(self.data_file(m), job_dir, options),
        )
        rate, how = rate_for(run, cell.records, cell.tier, self.charge)
        print(f"{run.wall:.1f} s, {run.tally.ok:,} ok, {rate:,.0f}/min ({how})", flush=True)
        charged = run.charged / max(1, run.admitted)
        script_charged = best[0].charged / max(1, best[0].admitted)
        out.verdicts.append(
            (
                rate >= 0.95 * best[1],
                f"--batch-size 1 >= 0.95x the best one-per-record script: {rate / best[1]:.2f}x "
                f"({rate:,.0f} vs {best[1]:,.0f}/min, {best[0].name})",
            )
        )
        out.verdicts.append(
            (
                charged <= 1.05 * script_charged,
                f"--batch-size 1 tokens charged per record within 5% of the script's: {charged:.1f} vs "
                f"{script_charged:.1f} ({charged / script_charged:.3f}x)",
            )
        )

    def judge(self, out: CellResult) -> None:
        run, bound, best = out.llmbatch, out.bound, out.best_script
        assert run is not None and best is not None and bound is not None
        n = out.cell.records
        rate = run.tally.ok / run.wall * 60
        ratio = rate / bound.run if math.isfinite(bound.run) else 0.0
        cpu = f"client {run.client_cpu:.1f} s + simulator {run.sim_cpu or 0:.1f} s CPU in {run.wall:.1f} s"
        cpu += f" = {run.cores:.2f} of {NCPU} cores"
        if run.phases is not None:
            cpu += f"; {run.phases.text()}"
        bound_text = "unbounded" if not math.isfinite(bound.run) else f"{bound.run:,.0f}/min"
        out.verdicts.append(
            (
                ratio >= 0.9 or run.cpu_bound,
                f"llmbatch >= 90% of the bound or CPU-bound: {ratio * 100:.1f}% of {bound_text} "
                f"({bound.run_term}-bound); {cpu}{' (CPU-bound)' if run.cpu_bound else ''}",
            )
        )
        speedup = rate / best[1] if best[1] else math.inf
        tpm_bound = bound.run_term == "TPM"
        need = 3.0 if tpm_bound else 1.0
        out.verdicts.append(
            (
                speedup >= need,
                f"llmbatch >= {need:g}x the best one-per-record script"
                f"{' (TPM-bound cell)' if tpm_bound else ''}: {speedup:.2f}x "
                f"({rate:,.0f} vs {best[1]:,.0f}/min, {best[0].name})",
            )
        )
        out.verdicts.append(
            (
                run.share_429 < 0.01,
                f"< 1% of requests answered 429: {run.sim['rate_limited']} of {run.sim['requests']} "
                f"({run.share_429 * 100:.2f}%)",
            )
        )
        counts = run.tally.extra.get("counts", {})
        out.verdicts.append((run.tally.ok == n, f"no record lost: {run.tally.ok:,} of {n:,} ok ({counts})"))


# -- reporting ------------------------------------------------------------------------------------


def print_cell(out: CellResult) -> None:
    run, bound = out.llmbatch, out.bound
    assert run is not None and bound is not None
    n = out.cell.records
    rows: list[list[Any]] = []

    def row(r: Run, rate: float, how: str) -> list[Any]:
        ok = max(1, r.tally.ok)
        return [
            r.name,
            r.records,
            r.wall,
            rate,
            how,
            r.tally.ok,
            r.admitted + int(r.sim["rate_limited"]),
            r.tally.rate_limited,
            r.sim["rate_limited"],
            f"{r.share_429 * 100:.2f}%",
            r.sim["prompt_tokens"] / ok,
            r.sim["completion_tokens"] / ok,
            r.charged / ok,
            r.latency,
            r.sim["max_concurrent"],
            r.client_cpu,
            r.sim_cpu,
            f"{r.cores:.2f}",
            None if r.others is None else f"{r.others:.2f}",
        ]

    rows.append(row(run, run.tally.ok / run.wall * 60, "measured"))
    for script, rate, how in out.scripts:
        rows.append(row(script, rate, how))
    bound_rate = bound.run if math.isfinite(bound.run) else None
    rows.append(
        [f"bound (packed, b={bound.b:.1f})", n, bound.t_min, bound_rate, f"{bound.run_term}-bound"]
        + [None] * 14
    )
    print_table(
        [
            "contender",
            "run on",
            "wall s",
            f"rec/min ({_short(n)})",
            "how",
            "ok",
            "requests",
            "429 cli",
            "429 sim",
            "429 share",
            "in tok/rec",
            "out tok/rec",
            "charged/rec",
            "mean L s",
            "max in flight",
            "client CPU s",
            "sim CPU s",
            "cores",
            "others' cores",
        ],
        rows,
        title=f"cell {out.cell.key}: {n:,} records, {out.cell.tier.label}, {out.cell.latency.label}",
    )
    extra = run.tally.extra
    sizes = ", ".join(f"{size}x{k}" for size, k in extra["pack_sizes"].items())
    best = out.best_script
    assert best is not None
    llm_rate = run.tally.ok / run.wall * 60
    ratio_bound = f"{llm_rate / bound.run * 100:.1f}%" if math.isfinite(bound.run) else "— (unbounded)"
    print(
        f"llmbatch: {llm_rate:,.0f}/min = {ratio_bound} of the bound, {llm_rate / best[1]:.2f}x the best "
        f"one-per-record script ({best[0].name}, {best[1]:,.0f}/min); steady formula "
        f"{bound.steady:,.0f}/min ({bound.steady_term}); charged {bound.charged_per_request:,.0f} "
        f"tokens/request; pack sizes (size x requests): {sizes}"
    )
    for ok, text in out.verdicts:
        print(verdict(out.cell.key, ok, text))


def print_summary(results: Sequence[CellResult]) -> None:
    rows: list[list[Any]] = []
    for out in results:
        run, best, bound = out.llmbatch, out.best_script, out.bound
        if out.error or run is None or best is None or bound is None:
            rows.append([out.cell.key, None, None, None, "", "error", None, None, None, None, None, "—"])
            continue
        rate = run.tally.ok / run.wall * 60
        finite = math.isfinite(bound.run)
        rows.append(
            [
                out.cell.key,
                rate,
                bound.run if finite else None,
                pct(rate / bound.run) if finite else None,
                bound.run_term,
                best[0].name,
                best[1],
                f"{rate / best[1]:.2f}x",
                f"{run.share_429 * 100:.2f}%",
                out.cell.records - run.tally.ok,
                f"{run.cores:.2f}",
                f"{sum(ok for ok, _ in out.verdicts)}/{len(out.verdicts)}",
            ]
        )
    print_table(
        [
            "cell",
            "llmbatch/min",
            "bound/min",
            "of bound",
            "binds",
            "best one-per-record",
            "its /min",
            "llmbatch x",
            "429 share",
            "lost",
            "cores",
            "PASS",
        ],
        rows,
        title="summary (llmbatch defaults; bound: packed workload from full buckets, this run's b, "
        "tokens and latency)",
    )


# -- main -----------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="comma-separated cells or parts: t1, t2-lat, t3-zero-3k")
    parser.add_argument("--quick", action="store_true", help="only the shortest job length (3,000)")
    parser.add_argument("--records", type=_ints, default=[3000, 30000], help="job lengths, comma-separated")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies the latency (not limits)")
    parser.add_argument(
        "--budget", type=float, default=30.0, help="s: longer one-per-record runs go on a subset"
    )
    parser.add_argument("--concurrency", type=_ints, default=[16, 64, 256], help="semaphore candidates")
    parser.add_argument(
        "--batch-size-1",
        action="store_true",
        help="also run llmbatch --batch-size 1 on the scripts' records and judge it against them",
    )
    args = parser.parse_args()

    lengths = sorted(set(args.records))[:1] if args.quick else sorted(set(args.records))
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    cells = [
        Cell(tier, latency, n)
        for tier in TIERS
        for latency in LATENCIES
        for n in lengths
        if selected(Cell(tier, latency, n), only)
    ]
    records = descriptions(max(lengths))
    tokens = [count_tokens(r["text"]) for r in records[:2000]]
    print("tiers: llmbatch defaults vs one-request-per-record scripts, by rate-limit tier")
    print(
        f"workload: one-line package descriptions ({statistics.fmean(tokens):.1f} tokens on average), "
        f"a {len(LABELS)}-label enum; cells: {', '.join(c.key for c in cells) or 'none'}"
    )
    scale = args.time_scale
    print(
        "time scale: "
        + ("1 (real latency)" if scale == 1 else f"latency x {scale:g} (rate limits stay per real minute)")
    )
    if cells:
        example = " ".join(Simulator(*sim_flags(cells[0], scale)).command)
        print(f"simulator, a fresh process per run, e.g.: {example}")
    print(f"machine: {NCPU} cores, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")

    results: list[CellResult] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmbatch-tiers-") as tmp:
        bench = Bench(args, Path(tmp), records)
        print(
            f"one-per-record: {bench.charge:.0f} tokens charged per request, max_tokens {SINGLE_MAX_TOKENS}"
        )
        for cell in cells:
            try:
                out = bench.run_cell(cell)
            except Exception as exc:  # the bench's top-level guard: report, go on, exit 0
                traceback.print_exc()
                out = CellResult(cell, error=f"{type(exc).__name__}: {exc}")
                print(verdict(cell.key, False, f"the cell did not run: {out.error}"))
            else:
                print_cell(out)
            results.append(out)
    print(
        f"\nall cells took {time.perf_counter() - started:.0f} s; load average now "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    print_summary(results)
    verdicts = [ok for out in results for ok, _ in out.verdicts] + [False for out in results if out.error]
    print(f"\n{sum(verdicts)} of {len(verdicts)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
