"""Metrics: percentiles, summary rates, cost, the time series — on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from _time import FakeClock
from llmbatch import Metrics
from llmbatch._metrics import percentile


def request(metrics: Metrics, **overrides: Any) -> None:
    values: dict[str, Any] = {
        "size": 4,
        "latency": 1.0,
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "cached_tokens": 0,
        "cost": 0.01,
        "concurrency": 2,
    }
    metrics.observe_request(**{**values, **overrides})


# -- percentile --------------------------------------------------------------------------------


def test_percentile_empty_is_none() -> None:
    assert percentile([], 50) is None


def test_percentile_single_value() -> None:
    assert percentile([3.0], 0) == percentile([3.0], 50) == percentile([3.0], 100) == 3.0


@pytest.mark.parametrize(
    ("q", "expected"), [(0, 1.0), (25, 1.75), (50, 2.5), (75, 3.25), (95, 3.85), (100, 4.0)]
)
def test_percentile_interpolates(q: float, expected: float) -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], q) == pytest.approx(expected)


def test_percentile_does_not_reorder_its_input() -> None:
    values = [3.0, 1.0, 2.0]
    percentile(values, 50)
    assert values == [3.0, 1.0, 2.0]


def test_percentile_p95_of_a_hundred() -> None:
    assert percentile([float(i) for i in range(1, 101)], 95) == pytest.approx(95.05)


# -- summary -----------------------------------------------------------------------------------


def test_empty_summary_has_no_rates() -> None:
    clock = FakeClock(500.0)
    metrics = Metrics(clock=clock)
    metrics.start()
    clock.advance(10)
    metrics.finish()
    summary = metrics.summary()
    assert summary["item_success_rate"] is None
    assert summary["first_try_rate"] is None
    assert summary["batch_success_rate"] is None
    assert summary["latency_mean_s"] is None and summary["latency_p50_s"] is None
    assert summary["mean_pack_size"] is None
    assert summary["items_per_min"] == 0.0
    assert summary["cost_usd"] == 0.0
    assert summary["cost_per_item_usd"] is None
    assert summary["elapsed_s"] == 10.0


def test_summary_rates() -> None:
    clock = FakeClock(500.0)
    metrics = Metrics(clock=clock)
    metrics.items_total = 10
    metrics.start()
    request(metrics, size=4, latency=1.0, cost=0.02)
    request(metrics, size=4, latency=3.0, cost=0.02, cached_tokens=50)
    request(metrics, size=2, latency=2.0, cost=0.01)
    metrics.observe_error("timeout")
    metrics.observe_error("rate_limited")
    metrics.observe_error("rate_limited")
    metrics.observe_items(ok=6, ok_first_try=5, first_tries=8, retried=3)
    metrics.observe_items(ok=2)  # e.g. cache hits: never tried, not in the first-try base
    metrics.observe_failed("missing", 1)
    metrics.observe_failed("invalid", 1)
    metrics.splits = 1
    clock.advance(30)
    metrics.finish()
    clock.advance(1000)  # after finish, time no longer counts
    summary = metrics.summary()
    assert summary["items_ok"] == 8 and summary["items_failed"] == 2
    assert summary["failed_by_kind"] == {"missing": 1, "invalid": 1}
    assert summary["item_success_rate"] == pytest.approx(0.8)
    # of the items whose first request ended, how many it answered validly
    assert summary["first_try_rate"] == pytest.approx(5 / 8)
    assert summary["requests"] == 6 and summary["requests_ok"] == 3
    assert summary["requests_failed_by_kind"] == {"timeout": 1, "rate_limited": 2}
    assert summary["batch_success_rate"] == pytest.approx(0.5)
    assert summary["rate_limited"] == 2 and summary["timeouts"] == 1
    assert summary["elapsed_s"] == 30.0
    assert summary["items_per_min"] == pytest.approx(10 / 30 * 60)
    assert summary["latency_mean_s"] == pytest.approx(2.0)
    assert summary["latency_p50_s"] == pytest.approx(2.0)
    assert summary["latency_p95_s"] == pytest.approx(2.9)
    assert summary["prompt_tokens"] == 300 and summary["completion_tokens"] == 60
    assert summary["cached_tokens"] == 50
    assert summary["cost_usd"] == pytest.approx(0.05)
    assert summary["cost_per_item_usd"] == pytest.approx(0.005)
    assert summary["retries"] == 3 and summary["splits"] == 1
    assert summary["mean_pack_size"] == pytest.approx(10 / 3)


def test_cost_is_unknown_when_any_request_was_unpriced() -> None:
    metrics = Metrics(clock=FakeClock(500.0))
    metrics.start()
    request(metrics, cost=0.5)
    request(metrics, cost=None)
    metrics.observe_items(ok=8)
    summary = metrics.summary()
    assert metrics.unpriced_requests == 1
    assert summary["cost_usd"] is None
    assert summary["cost_per_item_usd"] is None


def test_free_requests_are_priced_at_zero() -> None:
    metrics = Metrics(clock=FakeClock(500.0))
    metrics.start()
    request(metrics, cost=0.0)
    metrics.observe_items(ok=4)
    assert metrics.summary()["cost_usd"] == 0.0
    assert metrics.summary()["cost_per_item_usd"] == 0.0


def test_failed_request_cost_counts() -> None:
    metrics = Metrics(clock=FakeClock(500.0))
    metrics.observe_error("server_error", cost=0.25)
    metrics.observe_error("timeout")
    assert metrics.cost == 0.25
    assert metrics.summary()["cost_usd"] == 0.25


def test_first_try_rate_ignores_cached_and_resumed_items() -> None:
    metrics = Metrics(clock=FakeClock(500.0))
    metrics.items_ok = metrics.items_skipped = 5  # done in an earlier run
    metrics.start()
    metrics.items_cached = 3
    metrics.observe_items(ok=3)  # from the cache
    metrics.observe_items(ok=4, ok_first_try=2, first_tries=5)  # one of the five failed
    assert metrics.summary()["first_try_rate"] == pytest.approx(2 / 5)


def test_resumed_job_counts_only_this_runs_items_for_throughput_and_cost() -> None:
    clock = FakeClock(500.0)
    metrics = Metrics(clock=clock)
    # A resumed job: 1000 items were done and 10 failed in earlier runs.
    metrics.items_total = 1020
    metrics.items_ok = metrics.items_skipped = 1000
    metrics.items_failed.update({"invalid": 10})
    metrics.start()
    request(metrics, size=10, cost=0.1)
    metrics.observe_items(ok=9)
    metrics.observe_failed("missing")
    clock.advance(60)
    summary = metrics.summary()
    assert summary["items_this_run"] == 10
    assert summary["items_per_min"] == pytest.approx(10.0)
    assert summary["cost_per_item_usd"] == pytest.approx(0.01)
    assert summary["item_success_rate"] == pytest.approx(1009 / 1020)  # the job as a whole


def test_elapsed_runs_until_finish() -> None:
    clock = FakeClock(500.0)
    metrics = Metrics(clock=clock)
    metrics.start()
    clock.advance(5)
    assert metrics.elapsed == 5.0
    clock.advance(5)
    assert metrics.elapsed == 10.0
    metrics.finish()
    clock.advance(5)
    assert metrics.elapsed == 10.0


def test_elapsed_is_never_zero() -> None:
    metrics = Metrics(clock=FakeClock(500.0))
    metrics.start()
    metrics.finish()
    assert metrics.elapsed > 0
    metrics.summary()  # no division by zero


# -- time series -------------------------------------------------------------------------------


def test_time_series_buckets_per_second() -> None:
    clock = FakeClock(100.0)
    metrics = Metrics(clock=clock)
    metrics.start()
    request(metrics, size=4, latency=1.0, cost=0.01, concurrency=2)
    clock.advance(0.5)
    request(metrics, size=2, latency=2.0, cost=0.01, concurrency=3)
    metrics.observe_items(ok=5)
    clock.advance(2.0)
    metrics.observe_error("timeout")
    metrics.observe_items(ok=0)  # nothing to record
    assert set(metrics.series) == {0, 2}
    first = metrics.series[0]
    assert first["requests"] == 2
    assert first["latency_sum"] == pytest.approx(3.0)
    assert first["pack_size_sum"] == 6
    assert first["concurrency"] == 3
    assert first["items"] == 5
    assert first["cost"] == pytest.approx(0.02)  # running total
    assert metrics.series[2] == {"errors": 1}


def test_pack_sizes_and_latencies_recorded() -> None:
    metrics = Metrics(clock=FakeClock(500.0))
    metrics.start()
    for size, latency in ((5, 0.5), (5, 0.7), (3, 0.2)):
        request(metrics, size=size, latency=latency)
    assert metrics.pack_sizes == {5: 2, 3: 1}
    assert metrics.latencies == [0.5, 0.7, 0.2]


def test_a_run_whose_every_request_failed_still_reports_its_pack_sizes() -> None:
    metrics = Metrics(clock=FakeClock(500.0))
    metrics.start()
    metrics.observe_error("server_error", size=5, first_tries=5)
    metrics.observe_error("server_error", size=3, first_tries=0)
    metrics.observe_failed("server_error", 5)
    summary = metrics.summary()
    assert summary["mean_pack_size"] == pytest.approx(4.0)
    assert summary["first_try_rate"] == 0.0  # five items tried, none answered at once


def test_merge_adds_every_count_of_another_workers_metrics() -> None:
    import dataclasses

    into, part = Metrics(), Metrics()
    part.requests, part.items_ok, part.cost, part.done_at_start = 3, 20, 0.25, 5
    part.items_failed["invalid"] += 2
    part.latencies.extend([0.1, 0.2])
    part.by_model["m"] = {"requests": 3.0, "cost": 0.25}
    part.pack_size, part.concurrency, part.started = 10, 4, 99.0
    into.merge(part)
    into.merge(part)
    assert (into.requests, into.items_ok, into.cost, into.done_at_start) == (6, 40, 0.5, 10)
    assert into.items_failed == {"invalid": 4} and into.latencies == [0.1, 0.2, 0.1, 0.2]
    assert into.by_model == {"m": {"requests": 6.0, "cost": 0.5}}
    assert (into.pack_size, into.concurrency, into.started) == (10, 4, 0.0)  # gauges; the span is ours
    # Every plain count of the class is summed, so a counter added later is not lost on Ray.
    counts = [f.name for f in dataclasses.fields(Metrics) if f.type in ("int", "float")]
    fresh, ones = Metrics(), Metrics()
    for name in counts:
        setattr(ones, name, 1)
    fresh.merge(ones)
    # (the gauges take the part's value; the span and what earlier runs spent stay ours)
    assert {name for name in counts if getattr(fresh, name) != 1} == {"started", "spent_before"}
