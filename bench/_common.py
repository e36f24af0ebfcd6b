"""Shared helpers of the benchmarks: the simulator as a separate process, synthetic
reviews, the OpenAI-compatible provider pointed at the simulator, and tables.

Not a benchmark itself; the scripts next to it import it (``python bench/x.py``
puts ``bench/`` first on ``sys.path``).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbatch._pack.tokens import count_tokens
from llmbatch.providers import Provider, ProviderConfig, create_provider

__all__ = [
    "Simulator",
    "llmbatch_command",
    "pct",
    "print_table",
    "provider_for",
    "reviews",
    "verdict",
]


# -- the simulator, as a separate process ---------------------------------------------


def llmbatch_command() -> list[str]:
    """How to run the ``llmbatch`` CLI from this interpreter.

    ``python -m llmbatch.cli`` does not work (cli.py has no ``__main__`` guard and
    the package has no ``__main__.py``), so the console script next to the
    interpreter is used, or the click group called directly.
    """
    script = Path(sys.executable).with_name("llmbatch")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from llmbatch.cli import main; main()"]


class Simulator:
    """``llmbatch sim serve --port 0 FLAGS...`` in its own process, stopped on exit.

    with Simulator("--base-latency", "0.5") as sim:
        sim.base_url  # http://127.0.0.1:PORT/v1
        sim.stats()   # GET /sim/stats
    """

    def __init__(self, *flags: str, startup_timeout: float = 30.0) -> None:
        self.flags = [str(f) for f in flags]
        self.startup_timeout = startup_timeout
        self.base_url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._logs = tempfile.TemporaryDirectory(prefix="llmbatch-sim-")

    @property
    def command(self) -> list[str]:
        return [*llmbatch_command(), "sim", "serve", "--port", "0", *self.flags]

    def __enter__(self) -> Simulator:
        out = Path(self._logs.name) / "stdout"
        err = Path(self._logs.name) / "stderr"
        # Files, not pipes: a chatty server can never block on a full pipe.
        with out.open("wb") as stdout, err.open("wb") as stderr:
            self._process = subprocess.Popen(self.command, stdout=stdout, stderr=stderr)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            text = out.read_text(errors="replace")
            for line in text.splitlines():
                if "listening on" in line:
                    self.base_url = line.rsplit(" ", 1)[1].strip()
                    return self
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"simulator did not start: {err.read_text(errors='replace')[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._logs.cleanup()

    def _url(self, path: str) -> str:
        return self.base_url.removesuffix("/v1") + path

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self._url("/sim/stats"), timeout=10) as response:
            return json.load(response)  # type: ignore[no-any-return]

    def reset(self) -> None:
        request = urllib.request.Request(self._url("/sim/reset"), data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


def provider_for(base_url: str, timeout: float = 120.0) -> Provider:
    """The OpenAI-compatible provider, as a user would point it at the simulator."""
    config = ProviderConfig(base_url=base_url, api_key="sk-bench", model="sim-1", timeout=timeout)
    return create_provider("openai", config)


# -- synthetic reviews -------------------------------------------------------------------

_PRODUCTS = [
    "kettle",
    "blender",
    "headphones",
    "phone case",
    "desk lamp",
    "backpack",
    "coffee grinder",
    "yoga mat",
    "water bottle",
    "keyboard",
    "air fryer",
    "toaster",
    "robot vacuum",
    "office chair",
    "monitor stand",
    "rice cooker",
    "hiking boots",
    "rain jacket",
    "e-reader",
    "smart plug",
    "electric toothbrush",
    "french press",
    "bike light",
    "standing desk",
    "webcam",
    "crêpe pan",
    "Bluetooth speaker",
    "wool socks",
    "cast-iron skillet",
    "baby monitor",
]
_TITLES = {
    "positive": [
        "Great {p}",
        "Love this {p}",
        "Exactly what I needed",
        "Five stars",
        "Excellent value",
        "Works perfectly",
        "Very happy",
        "Best {p} so far",
        "Highly recommend",
        "Superb quality",
    ],
    "negative": [
        "Broken on arrival",
        "Disappointed",
        "Do not buy",
        "Stopped working",
        "Poor quality",
        "Waste of money",
        "Returned it",
        "Terrible {p}",
        "Not as described",
        "Avoid",
    ],
    "neutral": [
        "It's okay",
        "Average {p}",
        "Does the job",
        "Mixed feelings",
        "Fine for the price",
        "Nothing special",
        "As expected",
        "Decent",
        "Some pros, some cons",
        "Meh",
    ],
}
_SENTENCES = {
    "positive": [
        "The {p} arrived a day early and works great.",
        "Build quality is excellent and it feels solid in the hand.",
        "Setup took five minutes and the instructions were clear.",
        "I use it every morning and it has been reliable for three months.",
        "Customer service answered my question within an hour, very helpful.",
        "For the price this is a fantastic deal.",
        "My partner loves it too, we bought a second one.",
        "Quiet, fast and easy to clean, which is all I wanted.",
        "The battery easily lasts a week between charges.",
        "Honestly better than the brand-name {p} I had before.",
        "Packaging was minimal and recyclable, nice touch.",
        "Très bien — my friend in Lyon recommended it and she was right.",
    ],
    "negative": [
        "The {p} broke after two weeks of normal use.",
        "It arrived with a cracked housing and a missing cable.",
        "Customer service never answered my emails about a refund.",
        "The instructions were useless and the app kept crashing.",
        "It is much louder than the listing claims.",
        "Cheap plastic, it feels like it will snap any day.",
        "The battery dies after a few hours, terrible.",
        "I returned it and I'm still waiting for my money back.",
        'The box said "premium" but this is the worst {p} I have owned.',
        "Smells of burnt plastic every time I turn it on.",
        "Shipping took three weeks and the tracking number never worked.",
        "Zu teuer for what you get, and it stopped charging.",
    ],
    "neutral": [
        "The {p} does what it says, nothing more.",
        "Delivery was on time and the packaging was fine.",
        "It is a bit smaller than I expected from the photos.",
        "Colour is slightly different from the picture, not a big deal.",
        "Works okay, although the cable could be longer.",
        "I have only used it twice so far, so it is too early to tell.",
        "Comparable to other models in this price range.",
        "Assembly took about twenty minutes with the included tools.",
        "The manual is in English, French and Spanish.",
        "It replaced an older {p} that finally wore out.",
        "Some features are useful, others I will probably never use.",
        "It weighs about 1.2 kg, so it is easy to move around.",
    ],
}


def reviews(count: int, *, tokens: tuple[int, int], seed: int = 0) -> list[dict[str, str]]:
    """``count`` product reviews {id, title, text}, each ``{title}: {text}`` about ``tokens`` long.

    Sentences are added until the rendered item reaches a length drawn from
    ``tokens`` (low, high), as counted by ``llmbatch._pack.tokens.count_tokens``.
    Labels are spread 45% positive, 35% negative, 20% mixed.
    """
    rng = random.Random(seed)
    out: list[dict[str, str]] = []
    for i in range(count):
        mood = rng.choices(["positive", "negative", "neutral"], weights=[45, 35, 20])[0]
        product = rng.choice(_PRODUCTS)
        title = rng.choice(_TITLES[mood]).format(p=product)
        target = rng.randint(*tokens)
        pool = _SENTENCES[mood] + (_SENTENCES["neutral"] if mood != "neutral" else [])
        sentences: list[str] = []
        text = ""
        while count_tokens(f"{title}: {text}") < target:
            candidates = [s for s in pool if s not in sentences] or pool
            sentences.append(rng.choice(candidates).format(p=product))
            text = " ".join(sentences)
        out.append({"id": f"r{i:05d}", "title": title, "text": text})
    return out


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


# -- reporting ----------------------------------------------------------------------------


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """A plain fixed-width table; numbers right-aligned, text left-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(_is_number(row[i]) for row in rows) if rows else False for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    if title:
        print(f"\n{title}")
    print(line(list(headers)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))


_NUMERIC = re.compile(r"^(—|[-+]?[\d,.]+ ?(%|x|MB|s)?)$")


def _is_number(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_NUMERIC.match(value))
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def pct(value: float | None) -> str | None:
    """A ratio as a percentage cell: 0.987 -> '98.7%'."""
    return None if value is None else f"{value * 100:.1f}%"


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def verdict(name: str, ok: bool, detail: str) -> str:
    return f"{'PASS' if ok else 'FAIL'}  {name}: {detail}"


# -- added for bench/tiers.py: process CPU and the bound for one run ------------------------

__all__ += ["RunBound", "process_cpu_seconds", "run_bound", "simulator_cpu_seconds"]


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (``/proc/PID/stat``; None elsewhere)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    fields = raw.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def simulator_cpu_seconds(sim: Simulator) -> float | None:
    """CPU seconds the simulator's process has used so far (None once stopped)."""
    process = sim._process
    return None if process is None else process_cpu_seconds(process.pid)


@dataclass(frozen=True, slots=True)
class RunBound:
    """What ``run_bound`` finds: items/min for the steady formula and for this run."""

    b: float
    """Mean items per request."""
    charged_per_request: float
    steady: float
    """items/min <= min(RPM*b, TPM*b/charged per request, C*b*60/L): the issue's formula."""
    steady_term: str
    run: float
    """items/min for a run of ``items`` from full buckets (inf when nothing limits it)."""
    run_term: str
    t_min: float
    """The least seconds ``items`` can take from full buckets."""


def run_bound(
    items: float,
    requests: float,
    charged: float,
    *,
    rpm: float | None,
    tpm: float | None,
    latency: float,
    concurrency: int | None = None,
) -> RunBound:
    """The analytic bound of ``bench/throughput.py``, for any limits and counts.

    ``requests`` requests carrying ``items`` items were charged ``charged`` tokens in
    all (prompt + max_tokens, as OpenAI and the simulator count them); ``latency`` is
    the mean of a request; ``concurrency`` a cap on requests in flight (None: none).
    A bucket starts full (a minute's allowance), so a run takes at least

        T >= max(ceil(n/C)*L,  60*(n - RPM)/RPM + L,  60*(U - TPM)/TPM + L)

    (n requests, U tokens), which tends to the steady formula for long runs. Without
    a cap the latency term is one round trip, L.

    >>> run_bound(3000, 60, 120_000, rpm=500, tpm=200_000, latency=1.0).run_term
    'latency'
    """
    n = max(1.0, requests)
    b = items / n
    tpr = charged / n
    steady_terms: dict[str, float] = {}
    # The latency (or concurrency) term first: a limit named as binding must cost time beyond it.
    t_terms: dict[str, float] = {}
    if concurrency:
        steady_terms["concurrency"] = concurrency * b * 60 / latency if latency else math.inf
        t_terms["concurrency"] = math.ceil(n / concurrency) * latency
    else:
        steady_terms["latency"] = math.inf
        t_terms["latency"] = latency
    if rpm:
        steady_terms["RPM"] = rpm * b
        t_terms["RPM"] = 60 * max(0.0, n - rpm) / rpm + latency
    if tpm:
        steady_terms["TPM"] = tpm * b / tpr if tpr else math.inf
        t_terms["TPM"] = 60 * max(0.0, n * tpr - tpm) / tpm + latency
    t_min = max(t_terms.values())
    return RunBound(
        b=b,
        charged_per_request=tpr,
        steady=min(steady_terms.values()),
        steady_term=min(steady_terms, key=steady_terms.__getitem__),
        run=items * 60 / t_min if t_min > 0 else math.inf,
        run_term=max(t_terms, key=t_terms.__getitem__),
        t_min=t_min,
    )
