"""The runner honours what a provider says about itself: warm-up first, cached reads off the limit."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

from llmbatch import Capabilities, Completion, JobSpec, Request, RunOptions, Task, Usage, run_job
from llmbatch.providers.base import Provider

TASK = Task(instructions="Echo each text.", input="{text}", output="text")


class Recording(Provider):
    """Answers every key of a json pack; remembers how many requests were in flight."""

    capabilities = Capabilities(json_schema=True, warm_up_first=True)

    def __init__(self) -> None:
        self.model = "fake"
        self.in_flight = 0
        self.seen_in_flight: list[int] = []

    async def complete(self, request: Request) -> Completion:
        self.in_flight += 1
        self.seen_in_flight.append(self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        assert request.schema is not None
        keys = request.schema["required"]
        return Completion(
            content=json.dumps({key: f"answer {key}" for key in keys}),
            finish_reason="stop",
            usage=Usage(prompt_tokens=100, completion_tokens=10, cached_tokens=80),
            latency=0.01,
        )


def _spec(tmp_path: Path, task: Task = TASK, batch_size: int = 2) -> JobSpec:
    return JobSpec(
        task=task,
        input="<records>",
        output=None,
        job_dir=tmp_path / "job",
        options=RunOptions(batch_size=batch_size, concurrency=8),
        records=[{"id": str(i), "text": f"text {i}"} for i in range(20 * batch_size)],
    )


def test_a_provider_that_wants_a_warm_up_gets_one_request_alone_first(tmp_path: Path) -> None:
    provider = Recording()
    result = asyncio.run(run_job(_spec(tmp_path), provider))
    assert result.counts == {"done": 40}
    assert provider.seen_in_flight[1] == 1  # the second request went after the first was answered
    assert max(provider.seen_in_flight) > 1  # then it fans out


def test_without_a_warm_up_the_first_requests_go_together(tmp_path: Path) -> None:
    provider = Recording()
    provider.capabilities = replace(provider.capabilities, warm_up_first=False)
    asyncio.run(run_job(_spec(tmp_path), provider))
    assert provider.seen_in_flight[1] > 1


class AutomaticCache(Recording):
    """Caches prefixes of 1,024 tokens and more by itself, as OpenAI does."""

    capabilities = Capabilities(json_schema=True, cache_min_prefix=1024)


def test_a_prefix_the_provider_caches_by_itself_is_warmed_up_first(tmp_path: Path) -> None:
    examples = " ".join(f"example {i} echoes itself." for i in range(300))  # ~1,500 tokens
    provider = AutomaticCache()
    asyncio.run(run_job(_spec(tmp_path / "long", Task(instructions=examples, output="text")), provider))
    assert provider.seen_in_flight[1] == 1

    provider = AutomaticCache()
    asyncio.run(run_job(_spec(tmp_path / "short"), provider))  # too short to be cached: no warm-up
    assert provider.seen_in_flight[1] > 1


def test_cached_reads_are_not_charged_to_the_input_limit_when_the_provider_says_so(tmp_path: Path) -> None:
    from llmbatch._gates.limiter import RateLimiter

    class NoCacheCharge(Recording):
        capabilities = replace(Recording.capabilities, cache_reads_count_toward_limit=False)

    limiter = RateLimiter(input_tpm=1_000_000, learn=False, headroom=0.0)
    provider = NoCacheCharge()
    store_spec = _spec(tmp_path)
    from llmbatch._engine.runner import Runner
    from llmbatch._io import Record
    from llmbatch._store.ingest import ingest
    from llmbatch._store.job import JobStore

    store = JobStore.open(store_spec.job_dir)
    ingest(store, TASK, [Record(i, i, {"id": str(i), "text": f"t{i}"}) for i in range(4)])
    runner = Runner(TASK, provider, store, RunOptions(batch_size=4, concurrency=1), limiter=limiter)
    asyncio.run(runner.run())
    store.close()
    # one request: 100 prompt tokens reported, 80 of them cached → 20 charged
    assert 1_000_000 - limiter.buckets["input_tokens"].level < 25


def test_the_pack_schema_counts_toward_the_cacheable_prefix(tmp_path: Path) -> None:
    # ~650 tokens of system prompt: below 1,024 with a pack of 2's schema, above with a pack of 40's.
    examples = " ".join(f"example {i} echoes itself." for i in range(110))
    task = Task(instructions=examples, output={"type": "object", "properties": {"a": {"type": "string"}}})
    provider = AutomaticCache()
    asyncio.run(run_job(_spec(tmp_path / "large", task, batch_size=40), provider))
    assert provider.seen_in_flight[1] == 1

    provider = AutomaticCache()
    asyncio.run(run_job(_spec(tmp_path / "small", task, batch_size=2), provider))
    assert provider.seen_in_flight[1] > 1
