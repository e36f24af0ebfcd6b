"""Prompt caching made deliberate: what each request reads and writes, what that costs, the
keys and retentions sent, and Anthropic's batch priming measured on the simulator.

The simulator's rules (``sim/_batches.py``): a batch's lines run in parallel and read only
an entry that was live when the batch started; every other line writes. So a cold batch
reads nothing and pays a write per line, and a batch after a primer reads on every line.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from _e2e_helpers import load_task, review_records
from llmbatch._exceptions import UsageError
from llmbatch._pricing import Price, PriceTable, model_traits
from llmbatch._store.job import JobStore
from llmbatch._store.reads import open_snapshot
from llmbatch._task import Task
from llmbatch._types import Request, Usage
from llmbatch.cli import main
from llmbatch.cli.tables import metrics_table
from llmbatch.providers import ProviderConfig, create_provider
from llmbatch.providers.anthropic import AnthropicProvider, parse_message
from llmbatch.providers.openai import OpenAIProvider, parse_chat_response
from llmbatch.report.status import job_status, status_table
from llmbatch.sim import SimConfig, SimEngine
from llmbatch.sim._anthropic import AnthropicMessages
from llmbatch.sim._batches import SimBatches
from test_batch import FakeTime, batch_runner, job_store, provider_for, simulator

HAIKU = Price(input=1.0, output=5.0, cached_input=0.1, cache_write=1.25, cache_write_1h=2.0, batch=0.5)


# -- the price of reads and writes ---------------------------------------------------------


def test_cache_writes_are_priced_by_how_long_they_last() -> None:
    # 1,000 prompt tokens: 100 read, 300 written for 5 minutes, 200 for an hour, 400 plain.
    usage = Usage(
        prompt_tokens=1000,
        completion_tokens=100,
        cached_tokens=100,
        cache_write_tokens=500,
        cache_write_1h_tokens=200,
    )
    expected = (400 * 1.0 + 100 * 0.1 + 300 * 1.25 + 200 * 2.0 + 100 * 5.0) / 1e6
    assert HAIKU.cost(usage) == pytest.approx(expected)
    # Anthropic's cache multipliers stack on its batch discount.
    assert HAIKU.cost(usage, batch=True) == pytest.approx(expected / 2)
    # A model with no write price (OpenAI's) writes at the input price; reads and writes never
    # count for more tokens than the prompt has.
    plain = Price(input=1.0, output=5.0, cached_input=0.5)
    assert plain.cost(Usage(prompt_tokens=100, cache_write_tokens=100)) == pytest.approx(100 / 1e6)
    assert HAIKU.cost(Usage(prompt_tokens=100, cached_tokens=80, cache_write_tokens=80)) == pytest.approx(
        (80 * 0.1 + 20 * 1.25) / 1e6
    )


def test_the_shipped_anthropic_prices_carry_both_write_rates() -> None:
    price = PriceTable.load().get("claude-haiku-4-5")
    assert price is not None
    assert (price.cache_write, price.cache_write_1h) == (1.25, 2.0)  # 1.25× and 2× input


def test_anthropic_usage_says_what_was_read_and_written_and_for_how_long() -> None:
    message = {
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 50,
            "output_tokens": 7,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 900,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 900},
        },
    }
    usage = parse_message(message, 0.1, {}).usage
    assert usage == Usage(
        prompt_tokens=950, completion_tokens=7, cache_write_tokens=900, cache_write_1h_tokens=900
    )


def test_openai_usage_counts_cache_writes_where_the_model_reports_them() -> None:
    answer = {
        "choices": [{"message": {"content": "{}"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 2000,
            "completion_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 512},
        },
    }
    usage = parse_chat_response(answer, 0.1, {}).usage
    assert (usage.cached_tokens, usage.cache_write_tokens) == (1024, 512)


# -- what is sent ----------------------------------------------------------------------------


def request(system: str, keys: int) -> Request:
    schema = {"type": "object", "required": [f"k{i}" for i in range(1, keys + 1)], "properties": {}}
    return Request(
        system=system,
        user="Items",
        max_tokens=50,
        temperature=None,
        est_prompt_tokens=100,
        mode="json_schema",
        schema=schema,
    )


def test_one_prompt_cache_key_per_prefix_and_pack_schema_on_the_official_endpoint() -> None:
    provider = OpenAIProvider(ProviderConfig(model="gpt-4o-mini", api_key="sk-test"))
    first, again = provider.body(request("Label it.", 20)), provider.body(request("Label it.", 20))
    key = first["prompt_cache_key"]
    assert key == again["prompt_cache_key"] and key.startswith("llmbatch-") and len(key) <= 64
    assert provider.body(request("Label it.", 10))["prompt_cache_key"] != key  # another pack schema
    assert provider.body(request("Translate it.", 20))["prompt_cache_key"] != key  # another prefix
    # The same job in another process gets the same key (it is a digest, not a counter).
    other = OpenAIProvider(ProviderConfig(model="gpt-4o-mini", api_key="sk-test"))
    assert other.body(request("Label it.", 20))["prompt_cache_key"] == key
    assert "prompt_cache_retention" not in first  # the provider's default unless asked


def test_a_server_of_ones_own_gets_no_cache_parameters_unless_a_retention_is_asked_for() -> None:
    server = OpenAIProvider(ProviderConfig(model="m", base_url="http://127.0.0.1:9/v1", api_key="k"))
    body = server.body(request("Label it.", 20))
    assert "prompt_cache_key" not in body and "prompt_cache_retention" not in body
    asked = OpenAIProvider(
        ProviderConfig(
            model="m", base_url="http://127.0.0.1:9/v1", api_key="k", extra={"cache_retention": "24h"}
        )
    )
    body = asked.body(request("Label it.", 20))
    assert body["prompt_cache_retention"] == "24h" and body["prompt_cache_key"].startswith("llmbatch-")


def test_each_provider_refuses_the_others_retention_naming_its_own() -> None:
    with pytest.raises(UsageError, match="in_memory or 24h"):
        OpenAIProvider(ProviderConfig(model="m", api_key="k", extra={"cache_retention": "1h"}))
    with pytest.raises(UsageError, match="5m or 1h"):
        AnthropicProvider(ProviderConfig(model="c", api_key="k", extra={"cache_retention": "24h"}))


def test_anthropic_asks_for_the_retention_it_is_given_and_an_hour_for_batch_lines() -> None:
    req = dataclasses.replace(request("Label it.", 1), mode="tool")
    default = AnthropicProvider(ProviderConfig(model="c", api_key="k"))
    assert default.body(req)["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert default.batch_line("p0", req)["params"]["system"][0]["cache_control"]["ttl"] == "1h"
    hour = AnthropicProvider(ProviderConfig(model="c", api_key="k", extra={"cache_retention": "1h"}))
    assert hour.body(req)["system"][0]["cache_control"]["ttl"] == "1h"


def test_the_cli_refuses_a_retention_the_provider_does_not_have(tmp_path: Path) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": 1, "text": "fine"}\n')
    task = Path(__file__).parent.parent / "examples" / "sentiment.toml"
    result = CliRunner().invoke(
        main,
        ["run", str(data), "--task", str(task), "--provider", "anthropic", "--cache-retention", "24h"],
        env={"ANTHROPIC_API_KEY": "k"},
    )
    assert result.exit_code == 2, result.output
    assert "is not Anthropic's" in result.output and "Traceback" not in result.output
    # A provider with no prompt-cache retention at all is told so, not left to ignore it.
    ignored = CliRunner().invoke(
        main,
        ["run", str(data), "--task", str(task), "--provider", "gemini", "--cache-retention", "1h"],
        env={"GEMINI_API_KEY": "k"},
    )
    assert ignored.exit_code == 2, ignored.output
    assert "--cache-retention is read only by the openai and sim and anthropic provider, not gemini" in (
        ignored.output
    )


# -- the simulator's OpenAI cache parameters --------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def long_chat(retention: str | None = None, key: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "sim-1",
        "messages": [
            {"role": "system", "content": "Label the text. " + "Be careful and precise. " * 300},
            {"role": "user", "content": "Translate to Spanish: good morning"},
        ],
    }
    if retention is not None:
        body["prompt_cache_retention"] = retention
    if key is not None:
        body["prompt_cache_key"] = key
    return body


async def test_the_simulator_keeps_a_24h_entry_past_the_in_memory_lifetime() -> None:
    clock = Clock()

    async def no_sleep(_: float) -> None:
        return None

    engine = SimEngine(SimConfig(seed=1, prompt_caching=True), sleep=no_sleep, clock=clock)
    for retention in (None, "24h"):
        await engine.chat(long_chat(retention, key="llmbatch-x"))
        clock.now += 3600.0  # an hour later: the in-memory entry is gone, the 24h one is not
        later = await engine.chat(long_chat(retention, key="llmbatch-x"))
        cached = later.body["usage"]["prompt_tokens_details"]["cached_tokens"]
        assert (cached > 1000) == (retention == "24h"), retention
        clock.now += 2 * 86_400.0
    stats = engine.stats.snapshot()
    assert stats["prompt_cache_keys"] == {"llmbatch-x": 4}
    assert stats["prompt_cache_retention"] == {"in_memory": 2, "24h": 2}
    refused = await engine.chat(long_chat("1h"))
    assert refused.status == 400 and "prompt_cache_retention" in refused.body["error"]["message"]


# -- Anthropic batches: cold and primed, on the simulator's rules ----------------------------


def messages_params(text: str) -> dict[str, Any]:
    return {
        "model": "sim-1",
        "max_tokens": 50,
        "system": [
            {"type": "text", "text": "Translate. " * 400, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ],
        "messages": [{"role": "user", "content": f"Translate to Spanish: {text}"}],
    }


async def batch_usages(batches: SimBatches, texts: list[str]) -> list[dict[str, Any]]:
    created = batches.create_anthropic(
        {"requests": [{"custom_id": f"c{i}", "params": messages_params(t)} for i, t in enumerate(texts)]},
        "http://127.0.0.1",
    )
    batch_id = created.body["id"]
    await batches.drain()
    results = batches.anthropic_results(batch_id)
    assert results is not None
    import json

    return [json.loads(line)["result"]["message"]["usage"] for line in results.splitlines()]


async def test_a_cold_batch_reads_nothing_and_a_primed_one_reads_on_every_line() -> None:
    engine = SimEngine(SimConfig(seed=1, batch_delay=0.0))
    batches = SimBatches(engine)
    cold = await batch_usages(batches, ["good morning", "good night", "thank you"])
    assert all(u["cache_read_input_tokens"] == 0 for u in cold)
    assert all(u["cache_creation"]["ephemeral_1h_input_tokens"] > 1000 for u in cold)  # every line writes
    # The next batch starts with the entry its predecessor wrote: every line reads it.
    warm = await batch_usages(batches, ["see you", "welcome"])
    assert all(u["cache_read_input_tokens"] > 1000 and u["cache_creation_input_tokens"] == 0 for u in warm)
    # A request through /v1/messages writes the same entry a batch then reads.
    fresh = SimEngine(SimConfig(seed=1, batch_delay=0.0))
    primer = await AnthropicMessages(fresh).create(messages_params("hello"))
    assert primer.body["usage"]["cache_creation_input_tokens"] > 1000
    primed = await batch_usages(SimBatches(fresh), ["good morning", "good night"])
    assert all(u["cache_read_input_tokens"] > 1000 for u in primed)


# -- end to end: the batch runner primes, and the table shows what it saved -----------------


def long_task() -> Task:
    task = load_task("sentiment")
    guidance = "Read the whole review before you answer; irony and mixed reviews are common. " * 60
    return dataclasses.replace(task, instructions=f"{task.instructions}\n\n{guidance}")


async def run_anthropic_batch(
    tmp_path: Path, *, primed: bool
) -> tuple[dict[str, Any], list[tuple[int, int, int]]]:
    task = long_task()
    records = review_records(400, seed=2)
    store = job_store(tmp_path, task, records)
    fake = FakeTime()
    with simulator() as sim:
        provider = provider_for("anthropic", sim)
        if not primed:
            provider.capabilities = dataclasses.replace(provider.capabilities, primes_batch_cache=False)
        async with provider:
            runner = batch_runner(task, provider, store, fake, batch_size=20)
            runner.core.price = HAIKU
            metrics = await runner.run()
    assert store.counts() == {"done": 400}
    assert runner.primers == (1 if primed else 0)
    rows = store.db.execute(
        "SELECT prompt_tokens, cached_tokens, cache_write_tokens FROM requests ORDER BY id"
    ).fetchall()
    store.close()
    return metrics.summary(), rows


async def test_a_primed_anthropic_batch_reads_the_prefix_on_every_line_after_the_primer(
    tmp_path: Path,
) -> None:
    primed, primed_rows = await run_anthropic_batch(tmp_path / "primed", primed=True)
    cold, cold_rows = await run_anthropic_batch(tmp_path / "cold", primed=False)
    prefix = primed_rows[0][2]  # what the primer wrote: the cacheable prefix
    assert prefix > 800
    # Primed: every line after the primer read the whole prefix and wrote nothing.
    after = primed_rows[1:]
    assert len(after) == 19 and all(read == prefix and written == 0 for _, read, written in after)
    read_share = sum(read for _, read, _ in after) / sum(prompt for prompt, _, _ in after)
    assert read_share > 0.6  # of all prompt tokens, items included
    # Cold: the lines ran in parallel, so none read and every one paid the write.
    assert all(read == 0 and written == prefix for _, read, written in cold_rows)
    # The run's table shows both, and what they cost.
    assert primed["cost_usd"] < 0.6 * cold["cost_usd"]
    for summary in (primed, cold):
        table = metrics_table(summary, title="t")
        cells = dict(zip(table.columns[0].cells, table.columns[1].cells, strict=True))
        assert f"{summary['cache_write_tokens']:,}" in str(cells["prompt cache read / written"])
    assert primed["cache_write_tokens"] == prefix and cold["cached_tokens"] == 0


# -- the store keeps writes per request; a store from before them still reads -------------------


def test_status_reads_cache_writes_and_a_store_from_before_them(tmp_path: Path) -> None:
    store = JobStore.open(tmp_path / "new")
    from llmbatch._store.job import RequestRow

    store.record_request(
        RequestRow(0.0, 1.0, [], 1, "ok", prompt_tokens=1000, cached_tokens=0, cache_write_tokens=900), []
    )
    store.close()
    status = job_status(tmp_path / "new")
    assert status["cache_write_tokens"] == 900
    cells = dict(zip(*(c.cells for c in status_table(status).columns), strict=True))
    assert str(cells["prompt cache read / written"]).startswith("0 / 900 tokens")
    # A store made before the column existed, opened read-only (status does not migrate).
    old = tmp_path / "old"
    store = JobStore.open(old)
    store.close()
    db = sqlite3.connect(old / "job.sqlite")
    db.execute("DELETE FROM migrations WHERE id = 4")
    db.execute("ALTER TABLE requests DROP COLUMN cache_write_tokens")
    db.commit()
    db.close()
    with open_snapshot(old) as job:
        assert job.request_totals().cache_write_tokens == 0
    assert job_status(old)["cache_write_tokens"] == 0
    # Opened for writing, it is migrated.
    JobStore.open(old).close()
    db = sqlite3.connect(old / "job.sqlite")
    assert "cache_write_tokens" in {row[1] for row in db.execute("PRAGMA table_info(requests)")}
    db.close()


def test_create_provider_reads_the_retention_from_extra() -> None:
    provider = create_provider(
        "openai", ProviderConfig(model="m", api_key="k", extra={"cache_retention": "24h"})
    )
    assert isinstance(provider, OpenAIProvider) and provider.cache_retention == "24h"


# -- a prefix shorter than the model caches: no warm-up, no primer ------------------------------


def test_the_model_table_knows_each_claude_models_minimum_cacheable_prefix() -> None:
    assert model_traits("claude-haiku-4-5").cache_min_tokens == 4096
    assert model_traits("claude-sonnet-4-5").cache_min_tokens == 1024
    haiku = AnthropicProvider(ProviderConfig(model="claude-haiku-4-5", api_key="k"))
    assert (haiku.capabilities.warm_up_first, haiku.capabilities.cache_min_prefix) == (False, 4096)
    unknown = AnthropicProvider(ProviderConfig(model="claude-next", api_key="k"))
    assert unknown.capabilities.warm_up_first and unknown.capabilities.cache_min_prefix is None


async def test_a_batch_whose_prefix_the_model_would_not_cache_is_not_primed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    task = long_task()  # about a thousand tokens of prefix: under Haiku 4.5's 4,096
    store = job_store(tmp_path, task, review_records(100, seed=4))
    with simulator() as sim:
        config = ProviderConfig(
            model="claude-haiku-4-5", base_url=sim.base_url.removesuffix("/v1"), api_key="sk-test"
        )
        provider = create_provider("anthropic", config)
        async with provider:
            runner = batch_runner(task, provider, store, FakeTime(), batch_size=20)
            with caplog.at_level("INFO", logger="llmbatch"):
                await runner.run()
    assert store.counts() == {"done": 100}
    assert runner.primers == 0 and runner.batches_submitted == 1
    assert "shorter than the 4096 the model caches" in caplog.text
    store.close()


def test_a_batchs_cache_reads_are_priced_as_each_provider_documents() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=600)
    stack = Price(input=1.0, output=1.0, cached_input=0.1, batch=0.5)  # Anthropic, gpt-5
    groq = dataclasses.replace(stack, batch_cache="input")  # no stacking: the batch input rate
    gemini = dataclasses.replace(stack, batch_cache="cached")  # the cached rate, not halved again
    assert stack.cost(usage, batch=True) == pytest.approx((400 * 0.5 + 600 * 0.05) / 1e6)
    assert groq.cost(usage, batch=True) == pytest.approx((400 * 0.5 + 600 * 0.5) / 1e6)
    assert gemini.cost(usage, batch=True) == pytest.approx((400 * 0.5 + 600 * 0.1) / 1e6)
    assert groq.cost(usage) == gemini.cost(usage) == stack.cost(usage)  # sync is the same
    table = PriceTable.load()
    assert (table.get("gemini-2.5-flash") or stack).batch_cache == "cached"
    assert (table.get("llama-3.1-8b-instant") or stack).batch_cache == "input"
    with pytest.raises(ValueError, match="batch_cache"):
        Price.from_entry({"input": 1, "output": 1, "batch_cache": "sometimes"})
