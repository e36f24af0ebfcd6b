"""Other providers' OpenAI-shaped batch APIs: ``--mode batch --base-url`` against the simulator
speaking each (``SimConfig.batch_api``), through the official SDK, killed mid-poll and
re-attached; and what each one refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _e2e_helpers import load_task, review_records
from llmbatch._exceptions import UsageError
from llmbatch._store.job import JobStore
from llmbatch._types import Request
from llmbatch.providers import Provider, ProviderConfig, create_provider
from llmbatch.providers.batch_shapes import BATCH_APIS, batch_shape
from llmbatch.providers.openai import OpenAIProvider, read_batch_status
from llmbatch.sim import SimConfig, SimEngine
from llmbatch.sim._batches import BATCH_APIS as SIM_BATCH_APIS
from llmbatch.sim._batches import SimBatches
from llmbatch.sim.config import BATCH_API_NAMES
from llmbatch.sim.server import ThreadedServer
from test_batch import (
    FAULTS,
    FakeTime,
    assert_all_match_oracle,
    batch_rows,
    batch_runner,
    job_store,
    kill_and_resume,
    kill_mid_poll,
    provider_for,
    simulator,
)

SHAPED = ["groq", "together", "deepinfra"]


def shaped_provider(api: str, server: ThreadedServer, **extra: str) -> Provider:
    config = ProviderConfig(
        model="sim-1", base_url=server.base_url, api_key="sk-test", extra={"batch_api": api, **extra}
    )
    return create_provider("openai", config)


@pytest.mark.parametrize("api", SHAPED)
async def test_each_batch_api_finishes_every_record_and_re_attaches_after_a_kill(
    tmp_path: Path, api: str
) -> None:
    task = load_task("sentiment")
    records = review_records(1000, seed=9)
    store = job_store(tmp_path, task, records)
    with simulator(batch_api=api, batch_delay=1.0, **FAULTS) as sim:
        window = {"completion_window": "7d"} if api == "groq" else {}
        provider = shaped_provider(api, sim, **window)
        async with provider:
            second, store, _ = await kill_and_resume(task, provider, store, tmp_path / "job")
        stats = sim.stats()["batches"]
    assert second.batches_reattached == 1
    assert store.counts() == {"done": 1000}
    assert_all_match_oracle(store, task, "json", records)
    # The first batch went once; only its failed and expired lines went again.
    assert stats["submitted"] == 1 + second.batches_submitted
    assert stats["lines"] == 50 + stats["lines_failed"] + stats["lines_expired"] + second.metrics.splits
    store.close()


async def test_the_simulator_holds_each_api_to_its_documented_differences() -> None:
    line = {"custom_id": "p0", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "sim-1"}}
    data = json.dumps(line).encode() + b"\n"
    together = SimBatches(SimEngine(SimConfig(batch_api="together")))
    assert together.upload(data, purpose="batch", filename="in.jsonl").status == 400  # it wants batch-api
    uploaded = together.upload(data, purpose="batch-api", filename="in.jsonl")
    created = together.create_openai(
        {"input_file_id": uploaded.body["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    )
    assert created.status == 200 and created.body["job"]["status"] == "VALIDATING"  # wrapped, capitals
    groq = SimBatches(SimEngine(SimConfig(batch_api="groq")))
    file_id = groq.upload(data, purpose="batch", filename="in.jsonl").body["id"]
    for window, status in (("7d", 200), ("72h", 200), ("8d", 400), ("12h", 400)):
        body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": window}
        assert groq.create_openai(body).status == status, window
    openai_sim = SimBatches(SimEngine(SimConfig()))
    file_id = openai_sim.upload(data, purpose="batch", filename="in.jsonl").body["id"]
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "48h"}
    assert openai_sim.create_openai(body).status == 400
    await together.aclose()
    await groq.aclose()
    await openai_sim.aclose()


def test_the_batch_api_is_known_from_the_host_or_named() -> None:
    assert batch_shape("https://api.groq.com/openai/v1").name == "groq"
    assert batch_shape("https://api.together.xyz/v1").name == "together"
    assert batch_shape("https://api.deepinfra.com/v1/openai").name == "deepinfra"
    assert batch_shape("http://127.0.0.1:8000/v1").name == "openai"
    assert batch_shape(None).name == "openai"
    assert batch_shape("http://127.0.0.1:8000/v1", "together").purpose == "batch-api"
    with pytest.raises(UsageError, match="choose from"):
        batch_shape(None, "nope")


def test_each_api_takes_only_its_windows_and_writes_its_lines() -> None:
    with pytest.raises(UsageError, match=r"takes 24h$"):
        OpenAIProvider(ProviderConfig(model="m", api_key="k", extra={"completion_window": "48h"}))
    groq = OpenAIProvider(
        ProviderConfig(
            model="m",
            api_key="k",
            base_url="https://api.groq.com/openai/v1",
            extra={"completion_window": "7d"},
        )
    )
    assert groq.completion_window == "7d"
    with pytest.raises(UsageError, match="24h to 7d"):
        OpenAIProvider(
            ProviderConfig(
                model="m",
                api_key="k",
                base_url="https://api.groq.com/openai/v1",
                extra={"completion_window": "8d"},
            )
        )
    together = OpenAIProvider(ProviderConfig(model="m", api_key="k", base_url="https://api.together.xyz/v1"))
    assert together.batch_limits.max_bytes == 100_000_000
    request = Request(
        system="Label it.",
        user="Items",
        max_tokens=40,
        temperature=None,
        est_prompt_tokens=10,
        mode="text",
        schema=None,
    )
    assert set(together.batch_line("p0", request)) == {"custom_id", "body"}
    assert set(OpenAIProvider(ProviderConfig(model="m", api_key="k")).batch_line("p0", request)) == {
        "custom_id",
        "method",
        "url",
        "body",
    }


def test_the_simulator_and_the_client_name_the_same_apis() -> None:
    assert set(BATCH_APIS) == set(SIM_BATCH_APIS) == set(BATCH_API_NAMES)
    for name, shape in BATCH_APIS.items():
        sim = SIM_BATCH_APIS[name]
        assert (shape.purpose, shape.line_url) == (sim.purpose, sim.line_url), name
        # The client never sends more than the provider takes (MB read as 10^6, not 2^20).
        assert shape.limits.max_bytes <= sim.max_bytes, name


def test_a_together_status_in_capitals_without_counts_reads_as_ended() -> None:
    status = read_batch_status({"id": "b1", "status": "COMPLETED", "output_file_id": "f1", "progress": 100})
    assert status.ended and status.status == "completed" and status.total == 0
    running = read_batch_status({"id": "b1", "status": "IN_PROGRESS"})
    assert not running.ended


async def test_a_restarted_anthropic_job_waits_for_its_primer_before_submitting_the_rest(
    tmp_path: Path,
) -> None:
    task = load_task("sentiment")
    records = review_records(400, seed=3)
    store = job_store(tmp_path, task, records)
    with simulator(batch_delay=1.0) as sim:
        provider = provider_for("anthropic", sim)
        async with provider:
            await kill_mid_poll(task, provider, store)  # killed while the primer is open
            [primer] = batch_rows(store)
            assert primer["requests"] == 1
            store.close()
            store = JobStore.open(tmp_path / "job")
            second = batch_runner(task, provider, store, FakeTime())
            await second.run()
    assert store.counts() == {"done": 400}
    finished = dict(store.db.execute("SELECT id, finished FROM batches").fetchall())
    rows = batch_rows(store)
    assert second.batches_reattached == 1 and len(rows) >= 2
    # The rest went only once the primer had ended (so every line of it read the cache).
    assert rows[1]["submitted"] >= finished[rows[0]["id"]]
    reads = store.db.execute("SELECT cached_tokens FROM requests ORDER BY id").fetchall()
    assert all(read > 0 for (read,) in reads[1:])
    store.close()
