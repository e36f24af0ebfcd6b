"""Preparing a pack (both runners): a request too large for the model is split until the
record that does not fit is alone, and that one fails as ``too_large``; the rest go on."""

from __future__ import annotations

from pathlib import Path

from llmbatch import Capabilities, Completion, JobSpec, Request, RunOptions, Task, run_job
from llmbatch._store.job import JobStore
from llmbatch.providers.mock import MockProvider, items, reply

TASK = Task(
    instructions="Label each text.",
    input="{text}",
    output={"type": "object", "properties": {"label": {"enum": ["a", "b"]}}, "required": ["label"]},
)
HUGE = 2
RECORDS = [{"id": f"r{i}", "text": ("word " * 3000 if i == HUGE else f"text {i}")} for i in range(8)]


def answer_each(request: Request) -> Completion:
    return reply(request, {key: {"label": "a"} for key in items(request)})


def outcomes(job_dir: Path) -> dict[str, tuple[str, str]]:
    store = JobStore.open(job_dir, readonly=True)
    try:
        return {str(r.id): (r.status, r.error_kind) for r in store.results()}
    finally:
        store.close()


async def test_the_record_over_the_context_fails_alone_and_its_pack_mates_are_answered(
    tmp_path: Path,
) -> None:
    provider = MockProvider(answer_each, capabilities=Capabilities(json_schema=True, context_tokens=2_000))
    spec = JobSpec(
        task=TASK,
        input="<records>",
        output=None,
        job_dir=tmp_path / "job",
        options=RunOptions(batch_size=4),
        records=RECORDS,
    )
    job = await run_job(spec, provider)
    assert job.counts == {"done": 7, "failed": 1}
    results = outcomes(job.job_dir)
    assert results.pop(f"r{HUGE}") == ("failed", "too_large")
    assert set(results.values()) == {("ok", "")}
    # Nothing too large was ever sent: the split happened before the request.
    assert all("word word" not in "".join(items(r).values()) for r in provider.requests)
