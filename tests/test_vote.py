"""Permutation voting (``_vote``) with a scripted fake provider: passes, early stopping, the output."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import pytest

from _fakes import reply_content, request_texts
from llmbatch._exceptions import BudgetReached
from llmbatch._jobs.vote import vote
from llmbatch._options import RunOptions
from llmbatch._pricing import Price, PriceTable
from llmbatch._task import Task
from llmbatch._types import Capabilities, Completion, Request, Usage
from llmbatch.providers.base import Provider

TASK = Task(
    instructions="Label each text a, b or c.",
    input="{text}",
    id="id",
    output={
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["a", "b", "c"]}},
        "required": ["label"],
    },
)


class Script:
    """What the fake model answers: ``answers[text]`` is the sequence it gives on each call."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: dict[str, int] = defaultdict(int)
        self.requests: list[list[str]] = []  # the texts of every request, in order

    def next(self, text: str) -> str:
        sequence = self.answers[text]
        answer = sequence[min(self.calls[text], len(sequence) - 1)]
        self.calls[text] += 1
        return answer


class FakeProvider(Provider):
    name: ClassVar[str] = "fake"
    capabilities = Capabilities(json_schema=True)

    def __init__(self, script: Script) -> None:
        self.model = "fake-1"
        self.script = script

    async def complete(self, request: Request) -> Completion:
        texts = request_texts(request)
        self.script.requests.append(list(texts.values()))
        content = {key: {"label": self.script.next(text)} for key, text in texts.items()}
        # Charged what the runner reserved: the budget tests can then count exactly.
        usage = Usage(request.est_prompt_tokens, request.max_tokens)
        return Completion(reply_content(request, content), "stop", usage, latency=0.0)


PRICES = PriceTable({"fake-1": Price(input=1.0, output=2.0)})


async def run_vote(tmp_path: Path, script: Script, texts: list[str], votes: int, **kwargs: Any) -> Any:
    """Vote over ``texts`` (ids r0, r1, ...) plus ``extra`` records, packs of 4 unless told."""
    source = tmp_path / "in.jsonl"
    records = [{"id": f"r{i}", "text": text} for i, text in enumerate(texts)] + kwargs.pop("extra", [])
    if not source.exists():  # a rerun must find the very same file, or its jobs start over
        tmp_path.mkdir(parents=True, exist_ok=True)
        source.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = kwargs.pop("out", tmp_path / "out.jsonl")
    return await vote(
        TASK,
        source,
        out,
        lambda: FakeProvider(script),
        votes=votes,
        options=kwargs.pop("options", RunOptions(batch_size=4)),
        job_root=tmp_path / "job",
        prices=PRICES,
        **kwargs,
    )


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_only_disagreements_get_a_third_vote(tmp_path: Path) -> None:
    stable = [f"stable {i}" for i in range(6)]
    flips = ["flip 0", "flip 1"]
    script = Script({**{t: ["a"] for t in stable}, "flip 0": ["a", "b", "a"], "flip 1": ["c", "b", "b"]})
    report = await run_vote(tmp_path, script, stable + flips, votes=3)
    assert [p.records for p in report.passes] == [8, 8, 2]
    third = script.requests[-1:]
    assert sorted(text for request in third for text in request) == ["flip 0", "flip 1"]
    assert len(script.requests) == 2 + 2 + 1  # packs of 4: two per full pass, one for the two flips
    assert script.calls == {**{t: 2 for t in stable}, "flip 0": 3, "flip 1": 3}
    assert report.requests == 5 and report.extra_requests == 3
    first = report.passes[0].cost
    assert report.cost is not None and report.extra_cost is not None and first is not None
    assert report.extra_cost == pytest.approx(report.cost - first)
    assert report.extra_cost > first  # two more passes, one of them small
    assert report.settled_early == 6 and report.unanimous == 6
    out = {row["id"]: row for row in rows(tmp_path / "out.jsonl")}
    assert [row["id"] for row in rows(tmp_path / "out.jsonl")] == [f"r{i}" for i in range(8)]  # input order
    assert out["r0"] == {"id": "r0", "label": "a", "status": "ok", "error": "", "agreement": 1.0, "votes": 2}
    assert (out["r6"]["label"], out["r6"]["agreement"], out["r6"]["votes"]) == ("a", 0.6667, 3)
    assert (out["r7"]["label"], out["r7"]["agreement"]) == ("b", 0.6667)


async def test_every_pass_shuffles_differently(tmp_path: Path) -> None:
    texts = [f"t{i}" for i in range(12)]
    script = Script({t: ["a"] for t in texts})
    await run_vote(tmp_path, script, texts, votes=2)
    first, second = script.requests[:3], script.requests[3:]
    assert sorted(map(tuple, first)) != sorted(map(tuple, second))  # other packs, other neighbours


async def test_votes_stop_once_the_majority_is_certain(tmp_path: Path) -> None:
    # 5 votes: after 2 equal votes 3 remain (could still lose 2-3), after 3 equal votes it is certain.
    script = Script({"same": ["a"], "split": ["a", "b", "a", "b", "c"]})
    report = await run_vote(tmp_path, script, ["same", "split"], votes=5)
    assert script.calls == {"same": 3, "split": 5}
    assert [p.records for p in report.passes] == [2, 2, 2, 1, 1]
    out = rows(tmp_path / "out.jsonl")
    assert (out[0]["agreement"], out[0]["votes"]) == (1.0, 3)
    assert (out[1]["label"], out[1]["agreement"], out[1]["votes"]) == ("a", 0.4, 5)


async def test_no_third_pass_when_everything_agrees(tmp_path: Path) -> None:
    script = Script({"x": ["b"], "y": ["c"]})
    report = await run_vote(tmp_path, script, ["x", "y"], votes=3)
    assert len(report.passes) == 2 and report.settled_early == 2
    assert script.calls == {"x": 2, "y": 2}


async def test_two_votes_tie_goes_to_the_first(tmp_path: Path) -> None:
    script = Script({"x": ["b", "c"]})
    report = await run_vote(tmp_path, script, ["x"], votes=2)
    assert report.settled_early == 0
    assert rows(tmp_path / "out.jsonl")[0] == {
        "id": "r0", "label": "b", "status": "ok", "error": "", "agreement": 0.5, "votes": 2,
    }  # fmt: skip


async def test_a_record_that_cannot_be_sent_fails_once(tmp_path: Path) -> None:
    script = Script({"x": ["a", "b", "a"]})
    report = await run_vote(tmp_path, script, ["x"], votes=3, extra=[{"text": "no id"}])
    out = rows(tmp_path / "out.jsonl")
    assert out[1]["status"] == "failed" and "no id field" in out[1]["error"]
    assert (out[1]["agreement"], out[1]["votes"]) == (None, 0)
    assert [p.records for p in report.passes] == [2, 2, 1]  # the bad record is not sent again
    assert report.ok == 1 and report.failed == 1


async def test_csv_output_gains_the_vote_columns(tmp_path: Path) -> None:
    script = Script({"x": ["a"], "y": ["b", "c", "c"]})
    await run_vote(tmp_path, script, ["x", "y"], votes=3, out=tmp_path / "out.csv")
    with (tmp_path / "out.csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["id", "label", "status", "error", "agreement", "votes"]
    assert (table[1]["label"], table[1]["agreement"], table[1]["votes"]) == ("c", "0.6667", "3")


async def test_a_rerun_resumes_every_pass(tmp_path: Path) -> None:
    script = Script({"x": ["a", "b", "a"], "y": ["a"]})
    await run_vote(tmp_path, script, ["x", "y"], votes=3)
    sent = len(script.requests)
    report = await run_vote(tmp_path, script, ["x", "y"], votes=3)  # same input file content
    assert len(script.requests) == sent  # nothing asked again
    assert rows(tmp_path / "out.jsonl")[0]["agreement"] == 0.6667
    assert report.requests == 0


async def test_the_budget_covers_all_passes(tmp_path: Path) -> None:
    texts = [f"t{i}" for i in range(8)]
    two = await run_vote(tmp_path / "two", Script({t: ["a", "b", "c"] for t in texts}), texts, votes=2)
    assert two.cost is not None
    script = Script({t: ["a", "b", "c"] for t in texts})
    options = RunOptions(batch_size=4, max_cost=two.cost * 1.05)  # two passes fit, a third does not
    with pytest.raises(BudgetReached):
        await run_vote(tmp_path / "three", script, texts, votes=3, options=options)
    assert len(script.requests) == 4
