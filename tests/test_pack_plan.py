"""The pack-size plan (``_pack_plan``): job time by pack size in each regime, the latency line."""

from __future__ import annotations

import pytest

from llmbatch._engine.pack_plan import (
    JobShape,
    LatencyFit,
    SizePlanner,
    allowance_requests,
    best_pack_size,
    burst_ready,
    job_seconds,
)

# A 57-label classification: ~420 tokens of instructions and schema per request, ~63 per record
# (text, key, per-key schema, answer budget); 0.4 s + 12 ms per answer token, ~9 tokens a record.
CHARGE = lambda b: 420 + 63 * b  # noqa: E731
LATENCY = lambda b: 0.42 + 0.11 * b  # noqa: E731


def shape(remaining: int, **limits: float) -> JobShape:
    return JobShape(
        remaining=remaining, charge=CHARGE, latency=LATENCY, concurrency=1000, cpu_per_request=0.002, **limits
    )


def tier(rpm: float, tpm: float, remaining: int) -> JobShape:
    """Limits as a provider states them, with the whole minute's allowance left (a fresh job)."""
    return shape(remaining, request_rate=rpm / 60, token_rate=tpm / 60, request_level=rpm, token_level=tpm)


def test_a_short_job_within_the_allowance_gets_small_packs_sent_at_once() -> None:
    # 5,000 RPM / 4M TPM, 3,000 records: every request fits the allowance left; the job takes
    # about one round trip, which short packs keep short. CPU per request keeps them from 1.
    best = best_pack_size(tier(5000, 4_000_000, 3000), 50)
    assert 5 <= best <= 15
    assert job_seconds(tier(5000, 4_000_000, 3000), best) < job_seconds(tier(5000, 4_000_000, 3000), 50) / 2


def test_a_long_job_at_a_low_token_limit_gets_the_largest_packs() -> None:
    # 500 RPM / 200k TPM, 30,000 records: tokens per record set the pace.
    assert best_pack_size(tier(500, 200_000, 30_000), 50) == 50


def test_the_request_limit_binding_calls_for_larger_packs() -> None:
    # 60 RPM and a large token limit: records per request is the pace.
    assert best_pack_size(tier(60, 10_000_000, 5000), 50) == 50


def test_the_end_of_a_job_gets_smaller_packs_than_its_middle() -> None:
    middle = best_pack_size(shape(20_000), 50)
    end = best_pack_size(shape(200), 50)
    assert end < middle


def test_the_plan_never_exceeds_the_ceiling_or_the_records_left() -> None:
    assert best_pack_size(tier(500, 200_000, 30_000), 20) == 20
    assert best_pack_size(tier(500, 200_000, 3), 50) <= 3
    assert best_pack_size(shape(0), 50) == 1


def test_of_sizes_about_as_fast_the_cheaper_larger_one_wins() -> None:
    s = tier(5000, 4_000_000, 3000)
    best = best_pack_size(s, 50)
    fastest = min(job_seconds(s, b) for b in range(1, 51))
    assert job_seconds(s, best) <= 1.05 * fastest
    assert all(job_seconds(s, b) > 1.05 * fastest for b in range(best + 1, 51))


def test_the_latency_line_is_learnt_from_two_sizes_and_guessed_from_one() -> None:
    fit = LatencyFit()
    assert fit.at(10) is None
    fit.observe(10, 2.0)
    assert fit.line() == pytest.approx((1.0, 0.1))  # half fixed, half per item
    for _ in range(20):
        fit.observe(5, 0.4 + 0.1 * 5)
        fit.observe(20, 0.4 + 0.1 * 20)
    fixed, per_item = fit.line() or (0.0, 0.0)
    assert fixed == pytest.approx(0.4, abs=0.05) and per_item == pytest.approx(0.1, abs=0.005)


def test_a_latency_that_falls_with_size_is_no_negative_slope() -> None:
    fit = LatencyFit()
    for _ in range(5):
        fit.observe(5, 2.0)
        fit.observe(20, 1.0)
    fixed, per_item = fit.line() or (-1.0, -1.0)
    assert fixed >= 0 and per_item >= 0


def test_the_planner_learns_text_tokens_per_record_over_the_fixed_part() -> None:
    planner = SizePlanner(lambda size: 400 + 20 * size, cpu=lambda: 0.0)
    planner.sent(10, 400 + 20 * 10 + 10 * 30)  # 30 tokens of text a record
    assert planner.prompt_tokens(20) == pytest.approx(400 + 20 * 20 + 20 * 30)


def test_the_allowance_left_admits_the_whole_of_a_short_job_and_part_of_a_long_one() -> None:
    assert allowance_requests(tier(5000, 4_000_000, 3000), 10) == 300  # the whole job: 300 packs
    # 200k tokens at ~1,050 a pack of 10: 190 packs of the 3,000 the long job needs.
    assert allowance_requests(tier(500, 200_000, 30_000), 10) == 200_000 // CHARGE(10)
    assert allowance_requests(tier(60, 10_000_000, 5000), 10) == 60  # the request limit binds


def test_the_allowance_waits_for_packs_of_about_the_plans_size() -> None:
    low = tier(500, 200_000, 3000)
    planned = best_pack_size(low, 50)
    assert planned == 50
    assert not burst_ready(low, 5, planned)  # 5-record packs would spend it at twice the tokens a record
    assert burst_ready(low, planned, planned)
