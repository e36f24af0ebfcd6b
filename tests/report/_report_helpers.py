"""Jobs to report on: a real one run on the simulator, and hand-made stores with exact figures.

A module with a unique name (not conftest), imported explicitly by the report tests;
the fixtures that wrap it live in ``tests/report/conftest.py``.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from _e2e_helpers import load_task, review_records, write_jsonl
from llmbatch import JobSpec, PriceTable, ProviderConfig, RetryPolicy, RunOptions, create_provider, run_job
from llmbatch._engine.policy import Backoff
from llmbatch._store.job import DONE, JobStore, RequestRow
from llmbatch._types import ItemStatus
from llmbatch.report.html import CHART_IDS
from llmbatch.sim import SimConfig

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

STORED_COMMAND = [
    "llmbatch",
    "run",
    "reviews.jsonl",
    "--task",
    "sentiment.toml",
    "--api-key",
    "sk-secret-123",
    "--restart",
    "--job-dir",
    "my job",
]
"""What the CLI will store in ``meta["command"]``; the key and ``--restart`` must not come back."""

FAULTY_SIM = SimConfig(
    base_latency=0.02,
    per_output_token=0.0002,
    drop_rate=0.04,
    corrupt_rate=0.03,
    error_rate=0.08,
    timeout_rate=0.05,
    hang_seconds=1.0,
    seed=3,
)
"""A simulator that drops and corrupts answers, fails and hangs requests now and then."""


def sim_spec(root: Path, records: int, *, seed: int = 1) -> JobSpec:
    """A numbered-pack sentiment job over ``records`` reviews; one answer attempt, so failures stay."""
    source = write_jsonl(root / "in.jsonl", review_records(records, seed=seed))
    return JobSpec(
        task=load_task("sentiment"),
        input=source,
        output=root / "out.jsonl",
        job_dir=root / "job",
        options=RunOptions(
            concurrency=8,
            pack="numbered",
            timeout=0.3,
            policy=RetryPolicy(max_attempts=1, max_transient=2, backoff=Backoff(base=0.01, cap=0.05)),
        ),
        prices=PriceTable.load(),
    )


def sim_provider(sim: SimConfig = FAULTY_SIM, timeout: float = 0.3) -> Any:
    return create_provider("sim", ProviderConfig(timeout=timeout, extra={"sim": sim}))


def run_sim_job(root: Path, records: int = 300) -> Path:
    """Run the job to the end on the faulty simulator; returns its job dir."""
    spec = sim_spec(root, records)
    asyncio.run(run_job(spec, sim_provider()))
    store = JobStore.open(spec.job_dir)
    store.set_meta("command", STORED_COMMAND)
    store.close()
    return spec.job_dir


# -- hand-made stores -----------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    id: str
    status: ItemStatus = DONE
    kind: str = ""
    error: str = ""


def make_store(
    job_dir: Path,
    items: Sequence[Item],
    requests: Sequence[RequestRow] = (),
    meta: dict[str, Any] | None = None,
) -> Path:
    """A job store holding exactly these items, requests and meta keys."""
    store = JobStore.open(job_dir)
    store.add_items(
        (i, item.id, None, 0, "text", None, item.status, item.error, item.kind)
        for i, item in enumerate(items)
    )
    for request in requests:
        store.record_request(request, [])
    with store.transaction():
        for key, value in (meta or {}).items():
            store.set_meta(key, value)
    store.close()
    return job_dir


def ok(started: float, finished: float, size: int, *, cost: float | None = 0.01, **more: Any) -> RequestRow:
    """A successful request of ``size`` records, all answered."""
    return RequestRow(
        started=started,
        finished=finished,
        keys=list(range(size)),
        attempt=0,
        status="ok",
        latency=finished - started,
        cost=cost,
        items_ok=more.pop("items_ok", size),
        **more,
    )


def error(started: float, finished: float, size: int, kind: str) -> RequestRow:
    """A failed request: no usage, no cost (as the runner records it)."""
    return RequestRow(
        started=started, finished=finished, keys=list(range(size)), attempt=0, status="error", error_kind=kind
    )


# -- reading a rendered page -----------------------------------------------------------


class ChartMarks(HTMLParser):
    """Per chart id: the drawn data marks (rects with area, paths with a ``d``) and the texts."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: dict[str, list[str]] = {chart: [] for chart in CHART_IDS}
        self.texts: dict[str, list[str]] = {chart: [] for chart in CHART_IDS}
        self.found: set[str] = set()
        self._chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "svg" and a.get("id") in self.marks:
            self._chart = a["id"]
            self.found.add(a["id"])
        if self._chart is None or "data" not in a.get("class", "").split():
            return
        if tag == "rect" and float(a.get("height", 0)) > 0 and float(a.get("width", 0)) > 0:
            self.marks[self._chart].append(f"rect {a['height']}")
        elif tag == "path" and re.search(r"[MLHVZ]\S*\s*\S", a.get("d", "")):
            self.marks[self._chart].append(f"path {a['d'][:40]}")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None

    def handle_data(self, data: str) -> None:
        if self._chart is not None and data.strip():
            self.texts[self._chart].append(data.strip())


def chart_marks(page: str) -> ChartMarks:
    parser = ChartMarks()
    parser.feed(page)
    parser.close()
    return parser


# -- headless Chromium ----------------------------------------------------------------

COLLECTOR = """<script>
(function () {
  var seen = [];
  function note(what) {
    seen.push(String(what));
    var out = document.getElementById("__errors");
    if (out) { out.textContent = JSON.stringify(seen); }
  }
  window.addEventListener("error", function (e) {
    note("error: " + (e.message || (e.target && (e.target.src || e.target.href)) || e.type));
  }, true);
  window.addEventListener("unhandledrejection", function (e) { note("rejection: " + e.reason); });
  document.addEventListener("securitypolicyviolation", function (e) {
    note("csp: " + e.violatedDirective + " " + e.blockedURI);
  });
  ["error", "warn"].forEach(function (level) {
    var original = console[level];
    console[level] = function () {
      note("console." + level + ": " + Array.prototype.join.call(arguments, " "));
      original.apply(console, arguments);
    };
  });
  window.addEventListener("load", function () {
    var out = document.createElement("pre");
    out.id = "__errors";
    out.textContent = JSON.stringify(seen);
    document.body.appendChild(out);
  });
})();
</script>"""
"""Runs before the page's CSP takes effect (it comes first) and writes every error into the DOM."""

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


@dataclass(frozen=True)
class Loaded:
    dom: str
    errors: list[str]
    console: list[str]
    """Console lines Chromium logged (its own CSP refusals included)."""


def load_in_chromium(page: Path, work: Path, screenshot: Path | None = None) -> Loaded:
    """Open ``page`` (with the error collector injected first) in headless Chromium; the DOM after load."""
    chromium = shutil.which("chromium")
    assert chromium is not None
    probe = work / f"probe-{page.name}"
    probe.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + COLLECTOR, 1), "utf-8")
    args = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={work / 'profile'}", "--dump-dom"]
    if screenshot is not None:
        args += [f"--screenshot={screenshot}", "--window-size=1280,2000"]
    done = subprocess.run(
        [*args, probe.as_uri()], capture_output=True, text=True, timeout=90, check=False, cwd=work
    )
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r'<pre id="__errors">(.*?)</pre>', done.stdout, re.S)
    assert match is not None, "the load handler never ran: the page did not finish loading"
    errors = json.loads(html.unescape(match.group(1)))
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return Loaded(done.stdout, errors, console)
