"""The controllers' decisions, driven by a fake clock: no sleeping."""

from __future__ import annotations

from _time import FakeClock
from llmbatch._engine.control import ConcurrencyControl, PackSizeControl


def test_concurrency_starts_low_and_slow_starts_to_the_cap() -> None:
    control = ConcurrencyControl(16, FakeClock())
    assert control.limit == 4
    for _ in range(20):
        control.on_success(1.0, 1.0)
    assert control.limit == 16


def test_concurrency_halves_on_pressure_once_per_window() -> None:
    clock = FakeClock()
    control = ConcurrencyControl(16, clock, start=16)
    control.on_pressure(latency_hint=1.0)
    assert control.limit == 8
    control.on_pressure(latency_hint=1.0)  # same burst: no second decrease
    assert control.limit == 8
    clock.now = 2.0
    control.on_pressure(latency_hint=1.0)
    assert control.limit == 4


def test_concurrency_grows_additively_after_a_decrease() -> None:
    control = ConcurrencyControl(32, FakeClock(), start=8)
    control.on_pressure()
    assert control.limit == 4
    for _ in range(3):
        control.on_success(1.0, 1.0)
    assert control.limit == 4  # +1 only after a full window of 4 successes
    control.on_success(1.0, 1.0)
    assert control.limit == 5


def test_concurrency_does_not_grow_when_latency_does_not_hold() -> None:
    control = ConcurrencyControl(32, FakeClock(), start=4)
    for _ in range(10):
        control.on_success(latency=3.0, baseline=1.0)
    assert control.limit == 4


def test_concurrency_never_below_one() -> None:
    clock = FakeClock()
    control = ConcurrencyControl(4, clock, start=1)
    for step in range(5):
        clock.now = step * 10.0
        control.on_pressure()
    assert control.limit == 1


def _window(control: PackSizeControl, clock: FakeClock, *, seconds: float, ok_share: float) -> None:
    """One decision's worth of answers at the current size, each taking ``seconds``."""
    size = control.size
    for _ in range(control.window_requests):
        ok = round(size * ok_share)
        control.observe(size=size, ok_first=ok, ok=ok, latency=seconds)
        clock.advance(seconds)


def test_pack_size_grows_while_answers_hold_and_throughput_rises() -> None:
    clock = FakeClock()
    control = PackSizeControl(start=5, max_batch=50, clock=clock, window_requests=2)
    sizes = [control.size]
    for _ in range(8):
        _window(control, clock, seconds=1.0, ok_share=1.0)  # same time whatever the size
        sizes.append(control.size)
    assert sizes[:3] == [5, 10, 20]
    assert sizes == sorted(sizes)
    assert sizes[-1] == 50


def test_pack_size_shrinks_when_items_come_back_missing() -> None:
    clock = FakeClock()
    control = PackSizeControl(start=20, max_batch=50, clock=clock, window_requests=2)
    _window(control, clock, seconds=1.0, ok_share=0.5)
    assert control.size == 14


def test_answers_of_another_size_are_not_judged() -> None:
    clock = FakeClock()
    control = PackSizeControl(start=20, max_batch=50, clock=clock, window_requests=1)
    for _ in range(10):
        control.observe(size=5, ok_first=0, ok=0)  # old or retry packs, all bad
    assert control.size == 20


def _rate_window(control: PackSizeControl, clock: FakeClock, per_answer: float, limited: bool) -> None:
    size = control.size
    for _ in range(control.window_requests):
        clock.advance(per_answer)
        control.observe(size=size, ok_first=size, ok=size, latency=per_answer, limited=limited)


def test_pack_size_steps_back_when_growing_made_it_slower() -> None:
    clock = FakeClock()
    control = PackSizeControl(start=10, max_batch=50, clock=clock, window_requests=1)
    _rate_window(control, clock, per_answer=1.0, limited=False)  # 10 items/s
    assert control.size == 20
    _rate_window(control, clock, per_answer=10.0, limited=False)  # 2 items/s
    assert control.size == 10
    _rate_window(control, clock, per_answer=1.0, limited=False)
    assert control.size == 10  # the ceiling stays where growing stopped paying


def test_the_pace_answers_arrive_at_is_not_judged_only_their_latency() -> None:
    # The concurrency ramp and a rate limit's initial burst make answers arrive
    # faster or slower in wall time whatever the size: that must not move it.
    clock = FakeClock()
    control = PackSizeControl(start=5, max_batch=50, clock=clock, window_requests=2)
    gaps = iter([0.01, 5.0, 0.01, 3.0, 0.2, 9.0, 0.01, 0.01])
    for _ in range(4):
        size = control.size
        for _ in range(2):
            clock.advance(next(gaps))
            control.observe(size=size, ok_first=size, ok=size, latency=1.0 + size / 100)
    assert control.size == 50


def test_where_growing_stopped_paying_outlasts_what_fits() -> None:
    clock = FakeClock()
    control = PackSizeControl(start=10, max_batch=50, clock=clock, window_requests=1)
    _rate_window(control, clock, per_answer=1.0, limited=False)
    _rate_window(control, clock, per_answer=10.0, limited=False)
    assert control.size == 10
    control.fit(1000)  # every request re-checks what fits; the learnt ceiling stays
    _rate_window(control, clock, per_answer=1.0, limited=False)
    assert control.size == 10


def test_a_rate_limit_is_no_reason_to_step_back() -> None:
    clock = FakeClock()
    control = PackSizeControl(start=10, max_batch=50, clock=clock, window_requests=1)
    _rate_window(control, clock, per_answer=1.0, limited=False)
    assert control.size == 20
    _rate_window(control, clock, per_answer=10.0, limited=True)  # the bucket sets the pace
    assert control.size == 50  # 40 is within a quarter of the cap: straight to it


def test_pack_size_respects_what_fits() -> None:
    control = PackSizeControl(start=30, max_batch=50, clock=FakeClock())
    control.fit(12)
    assert control.size == 12


def test_fixed_pack_size_never_moves() -> None:
    clock = FakeClock()
    control = PackSizeControl(start=10, max_batch=10, clock=clock, adaptive=False)
    _window(control, clock, seconds=1.0, ok_share=0.1)
    assert control.size == 10


# -- concurrency found from the limits (Little's law), not capped by a guess --------------------


def round_trip(control: ConcurrencyControl, need: int | None, latency: float = 1.0) -> None:
    """Every request in flight comes back once."""
    for _ in range(control.limit):
        control.on_success(latency, latency, need)


def test_no_cap_by_default_and_slow_start_doubles_each_round_trip_without_known_limits() -> None:
    control = ConcurrencyControl(None, FakeClock())
    assert control.cap >= 1000
    seen = []
    for _ in range(6):
        round_trip(control, need=None)
        seen.append(control.limit)
    assert seen == [8, 16, 32, 64, 128, 256]


def test_with_the_need_known_slow_start_reaches_it_in_a_few_round_trips() -> None:
    control = ConcurrencyControl(None, FakeClock())
    trips = 0
    while control.limit < 400:
        round_trip(control, need=400)
        trips += 1
    assert trips == 1  # the limiter holds what the limits do not allow: jump to the need at once
    for _ in range(3):
        round_trip(control, need=400)
    assert 400 <= control.limit <= 600  # at the need, at most the margin above it


def test_the_limit_never_probes_far_past_what_the_limits_call_for() -> None:
    control = ConcurrencyControl(None, FakeClock())
    for _ in range(50):
        round_trip(control, need=40)
    assert control.limit == 60


def test_after_a_decrease_it_closes_half_the_gap_to_the_need_per_window() -> None:
    clock = FakeClock()
    control = ConcurrencyControl(None, clock, start=100)
    control.on_pressure()
    assert control.limit == 50
    round_trip(control, need=100)
    assert control.limit == 75  # not 51: +1 per window would take 50 windows
    round_trip(control, need=100)
    assert control.limit == 88


def test_a_users_cap_still_binds() -> None:
    control = ConcurrencyControl(8, FakeClock())
    for _ in range(10):
        round_trip(control, need=400)
    assert control.limit == 8


def test_without_known_limits_it_probes_one_per_window_after_pressure() -> None:
    control = ConcurrencyControl(None, FakeClock(), start=20)
    control.on_pressure()
    round_trip(control, need=None)
    assert control.limit == 11


def test_the_need_is_the_binding_limits_rate_times_the_latency() -> None:
    from llmbatch._engine.control import LittleNeed

    need = LittleNeed()
    assert need.of(request_rate=50.0, token_rate=20_000.0) is None  # no latency seen yet
    need.observe(latency=2.0, charged=1000)
    assert need.of(request_rate=50.0, token_rate=20_000.0) == 40  # tokens bind: 20/s × 2 s
    assert need.of(request_rate=5.0, token_rate=20_000.0) == 10  # requests bind: 5/s × 2 s
    assert need.of(request_rate=None, token_rate=None) is None  # no limit known


def test_the_plan_caps_the_pack_size_and_quality_still_gates_growth_towards_it() -> None:
    sizer = PackSizeControl(start=5, max_batch=50, clock=FakeClock(), window_requests=1)
    sizer.plan(12)
    for _ in range(5):
        sizer.observe(size=sizer.size, ok_first=sizer.size, ok=sizer.size, latency=1.0 + sizer.size)
    assert sizer.size == 12  # grown to the plan, not past it
    sizer.plan(6)  # the tail: smaller packs finish sooner
    assert sizer.size == 6
    sizer.plan(50)
    sizer.observe(size=6, ok_first=3, ok=6, latency=1.0)  # half came back missing
    assert sizer.size < 6  # a plan never overrides what quality says


def test_a_need_that_rises_before_any_pressure_is_met_at_once() -> None:
    control = ConcurrencyControl(None, FakeClock())
    for _ in range(5):
        round_trip(control, need=6)
    assert control.limit <= 9
    round_trip(control, need=120)  # packs reached the plan's size: the allowance opens
    assert control.limit >= 120
    control.on_pressure()
    limit = control.limit
    round_trip(control, need=1000)  # after a 429, the gap closes by halves
    assert limit < control.limit < 1000


def test_far_below_the_plan_a_good_window_skips_a_step() -> None:
    sizer = PackSizeControl(start=5, max_batch=50, clock=FakeClock(), window_requests=1)
    sizer.plan(50)  # a low token limit: the largest packs
    sizer.observe(size=5, ok_first=5, ok=5, latency=1.0)
    assert sizer.size == 20  # not 10: every step is a round trip of small packs
    sizer.observe(size=20, ok_first=20, ok=20, latency=2.0)
    assert sizer.size == 50
