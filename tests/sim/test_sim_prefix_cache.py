"""The simulator's emulation of OpenAI's automatic prompt cache (``SimConfig(prompt_caching=True)``)."""

from __future__ import annotations

from typing import Any

from sim_testkit import example_items, load_task, make_engine, roundtrip

from _time import FakeClock
from llmbatch._pack import PACKERS
from llmbatch._pack.tokens import MESSAGE_OVERHEAD, count_tokens
from llmbatch._task import Task, canonical_json
from llmbatch.sim import SimConfig
from llmbatch.sim._prefix_cache import MIN_TOKENS, STEP, TTL_SECONDS

CACHING = SimConfig(prompt_caching=True)


def long_task(words: int = 1100) -> Task:
    base = load_task("sentiment")
    examples = " ".join(f"example{i % 97} means neutral." for i in range(words // 3))
    return Task(instructions=f"{base.instructions}\n{examples}", output=base.output)


def cached_of(result: Any) -> int:
    return int(result.response.body["usage"]["prompt_tokens_details"]["cached_tokens"])


def prefix_tokens(task: Task, items: Any) -> int:
    """Schema, then the system message: the part every pack of this size shares."""
    request = PACKERS["json"].render(task, items)
    return count_tokens(canonical_json(request.schema)) + count_tokens(request.system) + MESSAGE_OVERHEAD


async def test_the_second_pack_of_a_size_reads_the_shared_prefix_in_128_token_steps() -> None:
    task = long_task()
    items = example_items("sentiment", task)
    engine = make_engine(CACHING)
    first = await roundtrip(engine, "json", task, items[:5])
    second = await roundtrip(engine, "json", task, items[5:10])
    prefix = prefix_tokens(task, items[:5])
    assert prefix >= MIN_TOKENS
    assert cached_of(first) == 0
    cached = cached_of(second)
    assert cached % STEP == 0 and MIN_TOKENS <= cached <= second.response.body["usage"]["prompt_tokens"]
    # The shared part is the schema, the system message and the user message's first few tokens.
    assert prefix // STEP * STEP <= cached <= prefix + 16
    assert engine.stats.cached_tokens == cached


async def test_another_pack_size_sends_another_schema_and_misses() -> None:
    task = long_task()
    items = example_items("sentiment", task)
    engine = make_engine(CACHING)
    await roundtrip(engine, "json", task, items[:5])
    assert cached_of(await roundtrip(engine, "json", task, items[5:9])) == 0
    assert cached_of(await roundtrip(engine, "json", task, items[9:13])) > 0


async def test_short_prompts_and_the_default_config_cache_nothing() -> None:
    short = load_task("sentiment")
    items = example_items("sentiment", short)
    engine = make_engine(CACHING)
    for start in (0, 5):
        assert cached_of(await roundtrip(engine, "json", short, items[start : start + 5])) == 0
    task = long_task()
    default = make_engine()
    for start in (0, 5):
        assert cached_of(await roundtrip(default, "json", task, items[start : start + 5])) == 0


async def test_an_entry_lives_five_minutes_after_its_last_use() -> None:
    task = long_task()
    items = example_items("sentiment", task)
    clock = FakeClock(1000.0)
    engine = make_engine(CACHING, clock=clock)
    await roundtrip(engine, "json", task, items[:5])
    clock.advance(TTL_SECONDS - 1)
    assert cached_of(await roundtrip(engine, "json", task, items[5:10])) > 0  # and kept alive
    clock.advance(TTL_SECONDS - 1)
    assert cached_of(await roundtrip(engine, "json", task, items[10:15])) > 0
    clock.advance(TTL_SECONDS + 1)
    assert cached_of(await roundtrip(engine, "json", task, items[15:20])) == 0
