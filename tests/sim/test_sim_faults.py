from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest
from sim_testkit import content_of, load_task, make_engine, roundtrip

from _time import FakeClock
from llmbatch._pack import PACKERS
from llmbatch._pack.tokens import MESSAGE_OVERHEAD, count_tokens
from llmbatch._task import Task
from llmbatch._types import Item
from llmbatch.sim import SimConfig, SimEngine, oracle_answer
from llmbatch.sim._ratelimit import go_duration

WORDS = ["great", "terrible", "kettle", "fast", "broken", "love", "refund", "fine", "box", "lid"]
PACK = 5
PACKS = 200


def packs(count: int = PACKS, size: int = PACK, seed: int = 0) -> list[list[Item]]:
    rng = random.Random(seed)
    out = []
    for p in range(count):
        texts = [" ".join(rng.choices(WORDS, k=6)) + f" #{p}.{i}" for i in range(size)]
        out.append([Item(p * size + i, f"r{p}.{i}", text) for i, text in enumerate(texts)])
    return out


def plain(i: int) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"request number {i}"}]}


async def outcome_counts(engine: SimEngine, fmt: str, task: Task) -> Counter[str]:
    """Outcomes by status over many packs; an "ok" answer is always the item's own."""
    counts: Counter[str] = Counter()
    for pack in packs():
        result = await roundtrip(engine, fmt, task, pack)
        for item in pack:
            outcome = result.outcomes[item.key]
            counts[outcome.status] += 1
            if outcome.status == "ok":
                assert outcome.answer == oracle_answer(task.item_schema, result.request.system, item.text)
    return counts


def near(count: int, rate: float, total: int) -> bool:
    """Within four standard deviations of the expected count (and a little slack)."""
    expected = rate * total
    spread = 4 * (total * rate * (1 - rate)) ** 0.5 + 2
    return abs(count - expected) <= spread


async def test_error_rate_and_shape() -> None:
    engine = make_engine(SimConfig(seed=3, error_rate=0.2))
    responses = [await engine.chat(plain(i)) for i in range(400)]
    failed = [r for r in responses if r.status != 200]
    assert near(len(failed), 0.2, 400)
    assert {r.status for r in failed} == {500, 502, 503}
    for response in failed:
        error = response.body["error"]
        assert set(error) >= {"message", "type", "code"} and error["type"] == "server_error"
    assert engine.stats.faults["error"] == len(failed)


async def test_same_seed_same_faults_in_any_order() -> None:
    config = SimConfig(seed=11, error_rate=0.3)
    bodies = [plain(i) for i in range(100)]
    forward = [(await make_engine(config).chat(b)).status for b in bodies]
    engine = make_engine(config)
    backward = [(await engine.chat(b)).status for b in reversed(bodies)][::-1]
    assert forward == backward
    other = [(await make_engine(SimConfig(seed=12, error_rate=0.3)).chat(b)).status for b in bodies]
    assert other != forward


async def test_a_retried_request_draws_again() -> None:
    engine = make_engine(SimConfig(seed=5, error_rate=0.5))
    statuses = [(await engine.chat(plain(0))).status for _ in range(40)]
    assert 200 in statuses and len(set(statuses)) > 1
    # ... and the sequence of draws is itself reproducible.
    again = make_engine(SimConfig(seed=5, error_rate=0.5))
    assert [(await again.chat(plain(0))).status for _ in range(40)] == statuses


async def test_timeout_hangs_for_hang_seconds() -> None:
    clock = FakeClock()
    engine = SimEngine(SimConfig(timeout_rate=1.0, hang_seconds=1234.0), sleep=clock.sleep)
    response = await engine.chat(plain(0))
    assert clock.sleeps[0] == 1234.0
    assert response.status == 200  # a client that waited long enough gets the answer


async def test_timeout_rate() -> None:
    clock = FakeClock()
    engine = SimEngine(SimConfig(seed=2, timeout_rate=0.1, hang_seconds=99.0), sleep=clock.sleep)
    for i in range(400):
        await engine.chat(plain(i))
    assert near(clock.sleeps.count(99.0), 0.1, 400)


async def test_drop_rate_numbered() -> None:
    task = load_task("sentiment")
    counts = await outcome_counts(make_engine(SimConfig(seed=1, drop_rate=0.1)), "numbered", task)
    assert near(counts["missing"], 0.1, PACKS * PACK)
    assert counts["missing"] + counts["ok"] == PACKS * PACK


async def test_corrupt_rate_numbered_and_json() -> None:
    task = load_task("sentiment")
    for fmt in ("numbered", "json"):
        counts = await outcome_counts(make_engine(SimConfig(seed=1, corrupt_rate=0.1)), fmt, task)
        assert near(counts["invalid"], 0.1, PACKS * PACK), fmt
        assert counts["invalid"] + counts["ok"] == PACKS * PACK


async def test_corrupt_text_answers_are_empty() -> None:
    task = load_task("translate")
    engine = make_engine(SimConfig(corrupt_rate=1.0))
    result = await roundtrip(engine, "numbered", task, packs(1)[0])
    assert {o.reason for o in result.outcomes.values()} == {"empty answer"}


async def test_misnumber_rate_numbered() -> None:
    task = load_task("sentiment")
    engine = make_engine(SimConfig(seed=4, misnumber_rate=0.3))
    counts = await outcome_counts(engine, "numbered", task)
    misnumbered = engine.stats.faults["misnumber"]
    assert near(misnumbered, 0.3, PACKS * PACK)
    # Each misnumbered answer loses its own item; a duplicate also spoils its target.
    assert misnumbered <= counts["missing"] + counts["invalid"] <= 2 * misnumbered
    assert counts["missing"] > 0 and counts["invalid"] > 0


async def test_misnumbered_keys_are_duplicates_or_outside_the_pack() -> None:
    task = load_task("sentiment")
    engine = make_engine(SimConfig(seed=9, misnumber_rate=1.0))
    pack = packs(1)[0]
    result = await roundtrip(engine, "numbered", task, pack)
    keys = [line.split(":", 1)[0] for line in content_of(result.response).splitlines()]
    own = {item.key for item in pack}
    assert len(keys) == PACK
    assert all(o.status != "ok" for o in result.outcomes.values())
    assert all(k not in own or keys.count(k) > 1 for k in keys)


@pytest.mark.parametrize("fmt", ["json", "tools"])
async def test_constrained_packs_keep_every_key(fmt: str) -> None:
    task = load_task("sentiment")
    engine = make_engine(SimConfig(seed=1, drop_rate=1.0, misnumber_rate=1.0))
    for pack in packs(20):
        result = await roundtrip(engine, fmt, task, pack)
        assert list(json.loads(content_of(result.response))) == PACKERS[fmt].keys(pack)
        assert all(o.status == "ok" for o in result.outcomes.values())


async def test_separator_drop_spoils_the_whole_pack() -> None:
    task = load_task("translate")
    engine = make_engine(SimConfig(seed=1, drop_rate=0.2))
    spoiled = 0
    for pack in packs(50):
        statuses = {o.status for o in (await roundtrip(engine, "separator", task, pack)).outcomes.values()}
        assert statuses in ({"ok"}, {"invalid"})
        spoiled += statuses == {"invalid"}
    assert spoiled > 0


@pytest.mark.parametrize("fmt", ["json", "tools", "numbered", "separator"])
async def test_truncation(fmt: str) -> None:
    task = load_task("translate" if fmt == "separator" else "sentiment")
    engine = make_engine(SimConfig(seed=1, truncate_rate=1.0))
    pack = packs(1)[0]
    result = await roundtrip(engine, fmt, task, pack)
    assert result.response.body["choices"][0]["finish_reason"] == "length"
    assert any(o.status != "ok" for o in result.outcomes.values())
    full = await roundtrip(make_engine(), fmt, task, pack)
    assert content_of(full.response).startswith(content_of(result.response))


@pytest.mark.parametrize("fmt", ["json", "tools", "numbered", "separator"])
async def test_malformed(fmt: str) -> None:
    task = load_task("translate" if fmt == "separator" else "sentiment")
    engine = make_engine(SimConfig(seed=1, malformed_rate=1.0))
    for pack in (packs(1)[0], packs(1)[0][:1]):
        result = await roundtrip(engine, fmt, task, pack)
        assert result.response.body["choices"][0]["finish_reason"] in ("stop", "tool_calls")
        assert all(o.status != "ok" for o in result.outcomes.values())


async def test_pack_rates_at_scale_are_reproducible() -> None:
    config = SimConfig(seed=8, drop_rate=0.05, corrupt_rate=0.05, truncate_rate=0.05, malformed_rate=0.05)
    task = load_task("sentiment")
    runs = []
    for _ in range(2):
        engine = make_engine(config)
        outcomes = []
        for pack in packs(60):
            result = await roundtrip(engine, "numbered", task, pack)
            outcomes.append([(k, o.status, o.answer) for k, o in result.outcomes.items()])
        runs.append((outcomes, engine.stats.snapshot()["faults"]))
    assert runs[0] == runs[1]
    assert set(runs[0][1]) >= {"drop", "corrupt", "truncate", "malformed"}


async def test_plain_prompts_are_cut_off_and_garbled_like_packs_but_never_dropped() -> None:
    # A plain request is what a one-per-record script sends and what llmbatch sends a pack of
    # one as: the same model cuts it off or garbles it as often as a pack.
    dropped = await make_engine(SimConfig(drop_rate=1.0)).chat(plain(1))
    assert content_of(dropped) == "1 number request"  # one item: nothing to leave out
    cut = await make_engine(SimConfig(truncate_rate=1.0)).chat(plain(1))
    assert cut.body["choices"][0]["finish_reason"] == "length"
    assert "1 number request".startswith(content_of(cut)) and content_of(cut) != "1 number request"
    garbled = await make_engine(SimConfig(malformed_rate=1.0)).chat(plain(1))
    assert content_of(garbled) == ""


async def test_request_rate_limit() -> None:
    clock = FakeClock(1000.0)
    engine = make_engine(SimConfig(rate_limit_rpm=3), clock=clock)
    ok = [await engine.chat(plain(i)) for i in range(3)]
    assert [r.status for r in ok] == [200] * 3
    assert ok[0].headers["x-ratelimit-limit-requests"] == "3"
    assert ok[0].headers["x-ratelimit-remaining-requests"] == "2"
    assert ok[0].headers["x-ratelimit-reset-requests"] == "20s"
    assert ok[2].headers["x-ratelimit-reset-requests"] == "1m0s"
    refused = await engine.chat(plain(3))
    assert refused.status == 429
    assert refused.body["error"]["type"] == "requests"
    assert refused.body["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["retry-after"] == "20"
    assert refused.headers["retry-after-ms"] == "20000"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    clock.advance(6.5)
    again = await engine.chat(plain(3))
    assert again.status == 429 and again.headers["retry-after"] == "13.5"
    clock.advance(13.5)
    assert (await engine.chat(plain(3))).status == 200
    assert engine.stats.rate_limited == 2
    assert engine.stats.by_status[429] == 2


async def test_token_rate_limit_counts_prompt_and_max_tokens() -> None:
    clock = FakeClock(1000.0)
    engine = make_engine(SimConfig(rate_limit_tpm=600), clock=clock)
    body = {**plain(0), "max_tokens": 200}
    cost = count_tokens("request number 0") + MESSAGE_OVERHEAD + 200
    assert (await engine.chat(body)).status == 200
    second = await engine.chat(body)
    assert second.status == 200
    assert second.headers["x-ratelimit-remaining-tokens"] == str(600 - 2 * cost)
    assert second.headers["x-ratelimit-limit-tokens"] == "600"
    assert "x-ratelimit-limit-requests" not in second.headers  # no RPM limit configured
    third = await engine.chat(body)
    assert third.status == 429 and third.body["error"]["type"] == "tokens"
    wait = (cost - (600 - 2 * cost)) / 10  # refilled at 600 / 60 = 10 tokens a second
    assert float(third.headers["retry-after"]) == pytest.approx(wait)
    # A refused request takes nothing: after the wait it fits exactly.
    clock.advance(wait)
    assert (await engine.chat(body)).status == 200


async def test_a_request_larger_than_the_limit_is_refused_without_retry_after() -> None:
    engine = make_engine(SimConfig(rate_limit_tpm=100), clock=FakeClock(1000.0))
    response = await engine.chat(plain(0))  # no max_tokens: counted as 1024
    assert response.status == 429
    assert response.body["error"]["type"] == "tokens"
    assert "retry-after" not in response.headers


async def test_quota_exhausted() -> None:
    engine = make_engine(SimConfig(quota_exhausted=True))
    response = await engine.chat(plain(0))
    assert response.status == 429
    assert response.body["error"]["code"] == "insufficient_quota"
    assert response.body["error"]["type"] == "insufficient_quota"
    assert "retry-after" not in response.headers


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.02, "20ms"), (0.0004, "0s"), (1, "1s"), (1.5, "1.5s"), (60, "1m0s"), (360, "6m0s"),
     (3725.5, "1h2m5.5s"), (59.9996, "1m0s")],
)  # fmt: skip
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_config_rejects_bad_rates() -> None:
    with pytest.raises(ValueError, match="drop_rate"):
        SimConfig(drop_rate=1.5)
    with pytest.raises(ValueError, match="max_concurrency"):
        SimConfig(max_concurrency=0)
