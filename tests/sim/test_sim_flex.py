"""The simulator's flex tier: slower answers that name their tier, and a seeded share of
429 "Resource Unavailable" that is not a rate limit."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from sim_testkit import make_engine

from llmbatch.sim import SimConfig
from llmbatch.sim.cli import serve


def body(i: int, tier: str | None = None) -> dict[str, Any]:
    sent: dict[str, Any] = {"messages": [{"role": "user", "content": f"request number {i}"}]}
    if tier is not None:
        sent["service_tier"] = tier
    return sent


def recording_sleep() -> tuple[list[float], Any]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return slept, sleep


async def test_a_flex_answer_names_its_tier_and_takes_flex_latency_times_as_long() -> None:
    slept, sleep = recording_sleep()
    engine = make_engine(SimConfig(base_latency=0.5, flex_latency=3.0), sleep=sleep)
    default = await engine.chat(body(1))
    flex = await engine.chat(body(1, "flex"))
    assert default.body["service_tier"] == "default" and flex.body["service_tier"] == "flex"
    assert slept == [0.5, 1.5]
    assert engine.stats.flex_requests == 1


async def test_a_share_of_flex_is_unavailable_without_retry_after_or_a_rate_limit_charge() -> None:
    engine = make_engine(SimConfig(flex_unavailable=0.2, rate_limit_rpm=10_000, seed=3))
    answers = [await engine.chat(body(i, "flex")) for i in range(1000)]
    refused = [a for a in answers if a.status == 429]
    assert 150 <= len(refused) <= 250
    assert all("Resource Unavailable" in a.body["error"]["message"] for a in refused)
    assert all("retry-after" not in a.headers for a in refused)
    stats = engine.stats.snapshot()
    assert stats["flex_unavailable"] == len(refused) and stats["flex_requests"] == 1000
    assert stats["rate_limited"] == 0, "the client counts 429s from rate_limited"
    # The default tier is never turned away.
    default = [(await engine.chat(body(i))).status for i in range(200)]
    assert set(default) == {200}


async def test_a_resent_flex_request_gets_through_and_the_draws_are_seeded() -> None:
    engine = make_engine(SimConfig(flex_unavailable=0.5, seed=1))
    statuses = [(await engine.chat(body(7, "flex"))).status for _ in range(20)]
    assert 200 in statuses and 429 in statuses
    again = make_engine(SimConfig(flex_unavailable=0.5, seed=1))
    assert [(await again.chat(body(7, "flex"))).status for _ in range(20)] == statuses


async def test_an_unknown_tier_is_a_400_naming_it() -> None:
    answer = await make_engine().chat(body(1, "turbo"))
    assert answer.status == 400
    assert answer.body["error"]["param"] == "service_tier" and "'turbo'" in answer.body["error"]["message"]


def test_the_knobs_are_checked_and_served_as_flags() -> None:
    with pytest.raises(ValueError, match="flex_unavailable"):
        SimConfig(flex_unavailable=1.5)
    with pytest.raises(ValueError, match="flex_latency"):
        SimConfig(flex_latency=0.5)
    result = CliRunner().invoke(serve, ["--flex-unavailable", "2", "--port", "0"])
    assert result.exit_code == 2 and "flex-unavailable" in result.output
    assert "--flex-latency" in CliRunner().invoke(serve, ["--help"]).output
