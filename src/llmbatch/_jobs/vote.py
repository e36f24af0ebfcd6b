"""Permutation voting: answer every record in several packs, at several positions, and keep the majority.

A layer over ``run_job``. Pass *k* is a job of its own (``<job root>/vote-k``)
with its own shuffle seed, so a record lands in a different pack, next to other
records, at another position each time, and position effects (items in the
middle of a large pack are answered worse) stop falling on the same records.
Passes 1 and 2 answer every record; a later pass answers only the records whose
majority is not yet certain — those whose leading answer could still be
overtaken by the votes left (Lin et al. 2023, BatchPrompt: BPE with SEAS):

    votes 3:  two equal answers after pass 2 settle a record; only disagreements get pass 3

Two votes are the same answer when their ``quality.vote_key`` is (canonical
JSON, strings case- and space-normalised): exact for enums, numbers and
booleans, the whole object for objects. A tie goes to the earliest vote among
the tied. Output rows gain ``agreement`` (the winner's share of the votes) and
``votes`` (how many were cast). Voting never reads or writes the result cache:
a cached answer would be one vote cast several times.

    report = await vote(task, "in.jsonl", "out.jsonl", lambda: create_provider("sim", config), votes=3,
                        job_root=Path(".llmbatch/in-task"))
    report.extra_requests, report.extra_cost
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._exceptions import BudgetReached, UsageError
from .._io import Row, open_reader, open_writer
from .._options import RunOptions
from .._pricing import PriceTable
from .._store.job import read_results
from .._task import Task
from .._types import JSON, FailureKind, IdValue, Result
from ..providers.base import Provider
from .job import JobResult, JobSpec, run_job
from .quality import vote_key

__all__ = ["PassResult", "VoteReport", "vote"]

ProviderFactory = Callable[[], Provider]

_HOPELESS = frozenset({FailureKind.INPUT, FailureKind.DUPLICATE_ID})
"""Failures no further pass can change (the record itself cannot be sent)."""

VOTE_COLUMNS = {"agreement": "number", "votes": "integer"}
"""The columns voting adds after ``error``: the winner's share of the votes, the votes cast."""


@dataclass(slots=True)
class _Ballot:
    """The votes one record received, in pass order."""

    id: IdValue
    votes: list[tuple[str, JSON]] = field(default_factory=list)
    sent: int = 0
    """Passes that included this record."""
    error: str = ""
    error_kind: str = ""

    def certain(self, remaining: int) -> bool:
        """True when ``remaining`` more votes cannot change the leading answer."""
        counts = [*sorted(Counter(key for key, _ in self.votes).values(), reverse=True), 0, 0]
        return counts[0] > counts[1] + remaining

    def needs(self, remaining: int) -> bool:
        """Whether the next pass should include this record."""
        return self.error_kind not in _HOPELESS and not self.certain(remaining)

    def winner(self) -> tuple[JSON, float]:
        """The majority answer and its share of the votes; ties go to the earliest vote."""
        counts = Counter(key for key, _ in self.votes)
        top = max(counts.values())
        for key, answer in self.votes:
            if counts[key] == top:
                return answer, top / len(self.votes)
        raise AssertionError("winner() of an empty ballot")


@dataclass(frozen=True, slots=True)
class PassResult:
    """One pass: which records it answered and what it cost."""

    number: int
    records: int
    job: JobResult

    @property
    def summary(self) -> dict[str, Any]:
        return self.job.metrics.summary()

    @property
    def requests(self) -> int:
        return int(self.summary["requests"])

    @property
    def cost(self) -> float | None:
        cost = self.summary["cost_usd"]
        return None if cost is None else float(cost)


@dataclass(slots=True)
class VoteReport:
    """What voting did: the passes, how records settled, what the extra votes cost."""

    votes: int
    records: int
    ok: int
    failed: int
    passes: list[PassResult]
    settled_early: int
    """Records whose majority was certain before the last pass (not sent to it)."""
    unanimous: int
    mean_agreement: float | None
    rows_written: int

    @property
    def requests(self) -> int:
        return sum(p.requests for p in self.passes)

    @property
    def extra_requests(self) -> int:
        """Requests beyond a single pass."""
        return sum(p.requests for p in self.passes[1:])

    @property
    def cost(self) -> float | None:
        return _total(p.cost for p in self.passes)

    @property
    def extra_cost(self) -> float | None:
        """Spend beyond a single pass (None when a pass's cost is unknown)."""
        return _total(p.cost for p in self.passes[1:])

    @property
    def elapsed_s(self) -> float:
        return sum(p.job.metrics.elapsed for p in self.passes)


async def vote(
    task: Task,
    input_path: str | Path,
    output_path: str | Path | None,
    provider_factory: ProviderFactory,
    *,
    votes: int = 3,
    options: RunOptions | None = None,
    job_root: Path,
    prices: PriceTable | None = None,
    restart: bool = False,
    input_format: str | None = None,
    output_format: str | None = None,
    notify: Callable[[str], None] | None = None,
    provider_for: Callable[[str], Provider] | None = None,
) -> VoteReport:
    """Answer every record ``votes`` times in differently shuffled packs; write the majority.

    ``provider_factory`` makes a fresh provider per pass. Each pass is a resumable
    job under ``job_root``; rerunning the same call resumes where it stopped.
    ``options.max_cost`` is the budget of all passes together. A task with a model
    cascade runs the cascade in every pass (``provider_for`` makes the later models).
    """
    if votes < 1:
        raise UsageError("--votes must be at least 1")
    options = options or RunOptions()
    # Opened before any pass runs: a bad output path or format fails before money is spent.
    writer = None
    if output_path is not None:
        writer = open_writer(output_path, task, output_format, extra_columns=VOTE_COLUMNS)
    job_root = Path(job_root)
    job_root.mkdir(parents=True, exist_ok=True)
    source, source_format = _replayable_input(input_path, input_format, job_root)
    ballots: dict[int, _Ballot] = {}
    passes: list[PassResult] = []
    for number in range(1, votes + 1):
        targets: list[int] | None = None  # None: the whole input
        path, fmt = source, source_format
        if number > 2:
            remaining = votes - number + 1
            targets = [i for i, ballot in sorted(ballots.items()) if ballot.needs(remaining)]
            if not targets:
                break
            path, fmt = job_root / f"pass-{number}.jsonl", None
            _write_subset(source, source_format, targets, path)
        spec = JobSpec(
            task=task,
            input=path,
            output=None,
            job_dir=job_root / f"vote-{number}",
            options=dataclasses.replace(
                options, seed=options.seed + number - 1, shuffle=True, max_cost=_left(options, passes)
            ),
            prices=prices,
            restart=restart,
            input_format=fmt,
            cache_dir=None,
        )
        job = await run_job(spec, provider_factory(), notify=notify, provider_for=provider_for)
        passes.append(PassResult(number, job.metrics.items_total, job))
        for result in read_results(spec.job_dir):
            # Passes 1 and 2 read the input itself; a later pass reads its targets, in order.
            index = result.index if targets is None else targets[result.index]
            ballot = ballots.setdefault(index, _Ballot(result.id))
            ballot.sent += 1
            if result.status == "ok":
                ballot.votes.append((vote_key(result.answer), result.answer))
            elif not ballot.votes or result.error_kind in _HOPELESS:
                ballot.error, ballot.error_kind = result.error, result.error_kind
    rows = [_row(index, ballot) for index, ballot in sorted(ballots.items())]
    written = 0 if writer is None else writer.write(rows)
    agreements = [row.extras["agreement"] for row in rows if row.extras["agreement"] is not None]
    ok = sum(row.result.status == "ok" for row in rows)
    return VoteReport(
        votes=votes,
        records=len(rows),
        ok=ok,
        failed=len(rows) - ok,
        passes=passes,
        settled_early=sum(1 for b in ballots.values() if b.votes and b.sent < votes),
        unanimous=sum(a == 1.0 for a in agreements),
        mean_agreement=sum(agreements) / len(agreements) if agreements else None,
        rows_written=written,
    )


def _row(index: int, ballot: _Ballot) -> Row:
    if ballot.votes:
        answer, share = ballot.winner()
        result = Result(index=index, id=ballot.id, status="ok", answer=answer)
        return Row(result, {"agreement": round(share, 4), "votes": len(ballot.votes)})
    result = Result(
        index=index,
        id=ballot.id,
        status="failed",
        error=ballot.error or "no pass answered this record",
        error_kind=ballot.error_kind,
    )
    return Row(result, {"agreement": None, "votes": 0})


def _replayable_input(
    input_path: str | Path, input_format: str | None, job_root: Path
) -> tuple[str | Path, str | None]:
    """The input and its format; standard input is copied under ``job_root`` (every pass reads it)."""
    if str(input_path) != "-":
        return input_path, input_format
    fmt = input_format or "jsonl"
    copy = job_root / f"input.{fmt}"
    data = sys.stdin.buffer.read()
    if not (copy.exists() and copy.read_bytes() == data):
        copy.write_bytes(data)
    return copy, fmt


def _write_subset(source: str | Path, fmt: str | None, targets: Sequence[int], path: Path) -> None:
    """The records at positions ``targets`` (ascending), streamed from the input into a JSONL file."""
    wanted = set(targets)
    lines = [
        json.dumps(r.fields, ensure_ascii=False)
        for r in open_reader(source, fmt)
        if r.index in wanted and r.fields is not None
    ]
    # The pass's answers are mapped back by position in this file: it must hold every target.
    if len(lines) != len(targets):
        raise UsageError(f"the input {source} changed while voting; run again with --restart")
    text = "".join(line + "\n" for line in lines)
    if not (path.exists() and path.read_text(encoding="utf-8") == text):
        path.write_text(text, encoding="utf-8")


def _left(options: RunOptions, passes: Sequence[PassResult]) -> float | None:
    """What is left of ``max_cost`` for the next pass: the budget covers every pass together."""
    if options.max_cost is None:
        return None
    spent = sum(p.cost or 0.0 for p in passes)
    if spent >= options.max_cost:
        raise BudgetReached(
            f"voting spent ${spent:.4f} of the ${options.max_cost:.4f} budget before pass "
            f"{len(passes) + 1}; run again with a larger --max-cost to finish (answers so far are kept)"
        )
    return options.max_cost - spent


def _total(costs: Iterable[float | None]) -> float | None:
    values = list(costs)
    if any(c is None for c in values):
        return None
    return sum(c for c in values if c is not None)
