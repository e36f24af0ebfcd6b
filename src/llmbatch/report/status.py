"""``llmbatch status``: how a job is going, read from its store while it runs or after.

The store is opened read-only, and every figure comes from one read transaction:
in WAL mode that is a consistent snapshot that neither waits for the running
job's writes nor blocks them.

    >>> status = job_status(".llmbatch/reviews-sentiment")   # doctest: +SKIP
    >>> status["records_done"], status["projected_spend_usd"]   # doctest: +SKIP
    (1200, 0.0184)
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from .._store.reads import JobSnapshot, open_snapshot
from .._types import FailureKind, ItemStatus
from .series import Timeline

__all__ = [
    "RECENT_WINDOW",
    "collect_status",
    "job_status",
    "prompt_cache_rows",
    "resume_command",
    "status_table",
]

RECENT_WINDOW = 60.0
"""Seconds over which the current rate is measured."""

FALLBACK_RESUME = "run the same llmbatch run command again (same --job-dir)"

_SECRET_OPTIONS = ("--api-key",)


def blank_secrets(argv: list[str]) -> list[str]:
    """``argv`` with the value of every secret option (``--api-key``) replaced by ``***``:
    how a run stores its command line, which ``resume_command`` later reads back."""
    cleaned: list[str] = []
    hide = False
    for arg in argv:
        if hide:
            cleaned.append("***")
            hide = False
        elif arg in _SECRET_OPTIONS:
            cleaned.append(arg)
            hide = True
        elif arg.startswith(tuple(f"{o}=" for o in _SECRET_OPTIONS)):
            cleaned.append(arg.partition("=")[0] + "=***")
        else:
            cleaned.append(arg)
    return cleaned


def resume_command(command: Any, cwd: Any = None) -> tuple[str, str]:
    """(command, note) that resumes a job, from the argv list stored in ``meta["command"]``.

    ``--restart`` is dropped (it would start over, not resume), and so is an
    ``--api-key`` and its value: secrets never reach a report.

        >>> resume_command(["llmbatch", "run", "in.jsonl", "--task", "t.toml", "--restart"])
        ('llmbatch run in.jsonl --task t.toml', '')
    """
    if isinstance(command, str) and command.strip():
        return command, ""
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        return FALLBACK_RESUME, ""
    argv: list[str] = []
    note = ""
    skip = False
    for arg in command:
        if skip:
            skip = False
        elif arg in _SECRET_OPTIONS:
            skip, note = True, "the API key is left out: set OPENAI_API_KEY"
        elif arg.startswith(tuple(f"{o}=" for o in _SECRET_OPTIONS)):
            note = "the API key is left out: set OPENAI_API_KEY"
        elif arg != "--restart":
            argv.append(arg)
    if Path(argv[0]).name == "__main__.py":
        argv = ["python", "-m", "llmbatch", *argv[1:]]
    elif not Path(argv[0]).name.startswith("llmbatch"):
        argv = ["llmbatch", *argv]  # stored without the program name
    line = shlex.join(argv)
    if isinstance(cwd, str) and cwd:
        line = f"cd {shlex.quote(cwd)} && {line}"
    return line, note


def job_status(job_dir: str | Path, *, now: float | None = None) -> dict[str, Any]:
    """Progress, rates, spend, failures and the resume command of a job, as plain data.

    Safe while the job runs. ``now`` (epoch seconds) is injectable for tests.
    Costs: a request that failed has no usage and costs nothing; spend is
    unknown (None) when a request that got an answer has no price.
    """
    with open_snapshot(job_dir) as job:
        return collect_status(job, job_dir, now=now)


def collect_status(job: JobSnapshot, job_dir: str | Path, *, now: float | None = None) -> dict[str, Any]:
    """``job_status`` over an open snapshot (so it shares the caller's moment)."""
    now = time.time() if now is None else now
    counts = job.item_counts()
    from_cache = job.cached_items()
    failures = job.failures_by_kind()
    (requests, ok, answered, spend, unpriced, prompt, completion, cached, written, mean_size, first, last) = (
        job.request_totals()
    )
    errors = job.request_errors_by_kind()
    recent = job.items_answered_since(now - RECENT_WINDOW)
    timeline = Timeline.from_intervals(job.request_intervals())
    identity = job.meta("identity") or {}
    command, note = resume_command(job.meta("command"), job.meta("cwd"))

    done = counts.get(ItemStatus.DONE, 0)
    failed = counts.get(ItemStatus.FAILED, 0)
    pending = counts.get(ItemStatus.PENDING, 0)
    window = min(RECENT_WINDOW, now - first) if first is not None else 0.0
    rate_recent = recent * 60.0 / window if window > 0 else 0.0
    rate_overall = answered * 60.0 / timeline.duration if timeline.duration > 0 else None
    spent = None if unpriced else float(spend)
    # Cost per record over the records that went through requests (answered or failed);
    # cache hits cost nothing. A finished job's projection is then exactly its spend.
    billed = answered + failed
    per_record = spent / billed if spent is not None and billed else None
    projected = None
    if spent is not None and not pending:
        projected = spent
    elif spent is not None and per_record is not None:
        projected = spent + per_record * pending
    return {
        "job_dir": str(job_dir),
        "model": identity.get("model"),
        "endpoint": identity.get("endpoint"),
        "input": identity.get("input"),
        "records_total": done + failed + pending,
        "records_done": done,
        "records_failed": failed,
        "records_pending": pending,
        "records_from_cache": from_cache,
        "items_per_min_last_60s": rate_recent,
        "items_per_min_overall": rate_overall,
        "active_s": timeline.duration,
        "eta_s": pending * 60.0 / rate_recent if pending and rate_recent > 0 else None,
        "spend_usd": spent,
        "spend_per_record_usd": per_record,
        "projected_spend_usd": projected,
        "unpriced_requests": unpriced,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": cached,
        "cache_write_tokens": written,
        "requests": requests,
        "requests_ok": ok,
        "requests_failed_by_kind": errors,
        "rate_limited": errors.get(FailureKind.RATE_LIMITED, 0),
        "timeouts": errors.get(FailureKind.TIMEOUT, 0),
        "failures_by_kind": failures,
        "mean_pack_size": mean_size,
        "first_request_at": first,
        "last_request_at": last,
        "idle_s": max(0.0, now - last) if last is not None else None,
        "resume_command": command,
        "resume_note": note,
    }


# -- formatting (shared with the HTML report) ----------------------------------------


def usd(value: float | None, digits: int = 4) -> str:
    return "unknown" if value is None else f"${value:,.{digits}f}"


def rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}/min"


def duration(seconds: float | None) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 10 min``."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def kinds(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{kind} {n:,}" for kind, n in counts.items()) or "none"


def when(epoch: float | None) -> str:
    if epoch is None:
        return "–"
    return datetime.fromtimestamp(epoch).astimezone().isoformat(sep=" ", timespec="seconds")


def prompt_cache_rows(figures: Mapping[str, Any], *, requests: int) -> list[tuple[str, str]]:
    """The prompt cache's row of a table (``run``'s, ``status``'s) when it was read or written:
    tokens read and written, the share of input read, and both per answered request."""
    read, written = figures.get("cached_tokens", 0), figures.get("cache_write_tokens", 0)
    prompt = figures.get("prompt_tokens", 0)
    if not (read or written):
        return []
    share = f" · {read / prompt:.0%} of input read" if prompt else ""
    each = f" · per request {read / requests:,.0f} / {written / requests:,.0f}" if requests else ""
    return [("prompt cache read / written", f"{read:,} / {written:,} tokens{share}{each}")]


def status_table(status: Mapping[str, Any]) -> Table:
    """A two-column rich table of ``job_status()``. Values are plain ``Text``: no markup parsed."""
    table = Table(title=f"llmbatch status · {status['job_dir']}", show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value")
    total = status["records_total"]
    settled = status["records_done"] + status["records_failed"]
    share = f" ({settled / total:.1%} settled)" if total else ""
    rows = [
        ("job", f"{status['model'] or '?'} · {status['endpoint'] or '?'} · {status['input'] or '?'}"),
        (
            "records",
            f"{total:,} total · {status['records_done']:,} done · {status['records_failed']:,} failed"
            f" · {status['records_pending']:,} pending{share}",
        ),
        (
            "rate",
            f"{rate(status['items_per_min_last_60s'])} last 60 s · "
            f"{rate(status['items_per_min_overall'])} overall ({duration(status['active_s'])} active)",
        ),
        ("ETA", duration(status["eta_s"]) if status["records_pending"] else "done"),
        (
            "spend",
            f"{usd(status['spend_usd'])} so far · {usd(status['projected_spend_usd'])} projected total"
            f" · {usd(status['spend_per_record_usd'], 6)} per record",
        ),
        (
            "tokens in / out / cached",
            f"{status['prompt_tokens']:,} / {status['completion_tokens']:,} / {status['cached_tokens']:,}",
        ),
        *prompt_cache_rows(status, requests=status["requests_ok"]),
        ("requests", f"{status['requests']:,} (mean pack {status['mean_pack_size'] or 0:.1f})"),
        ("429s / timeouts", f"{status['rate_limited']:,} / {status['timeouts']:,}"),
        ("failed records by kind", kinds(status["failures_by_kind"])),
        ("failed requests by kind", kinds(status["requests_failed_by_kind"])),
        (
            "last request",
            f"{when(status['last_request_at'])} ({duration(status['idle_s'])} ago)"
            if status["last_request_at"] is not None
            else "none yet",
        ),
        ("resume", status["resume_command"]),
    ]
    if status["resume_note"]:
        rows.append(("", status["resume_note"]))
    for name, value in rows:
        table.add_row(name, Text(value))
    return table
