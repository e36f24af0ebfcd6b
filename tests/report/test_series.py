"""The report's time series and its SVG kit, on hand-made requests with known answers."""

from __future__ import annotations

import pytest

from llmbatch._store.reads import RequestRecord
from llmbatch.report.series import (
    Timeline,
    bucket_width,
    concurrency,
    histogram,
    pack_sizes,
    throughput,
)
from llmbatch.report.svg import Bar, Plot, bar_chart, fmt_seconds, message_chart, nice_step


def request(started: float, finished: float, size: int = 1, items_ok: int | None = None) -> RequestRecord:
    ok = size if items_ok is None else items_ok
    return RequestRecord(started, finished, size, "ok", "", ok, finished - started, 0.0, 0, 0, 0, 0)


def test_timeline_cuts_out_long_idle_gaps_only() -> None:
    timeline = Timeline.from_intervals([(100, 110), (105, 130), (150, 160), (1000, 1010)], gap=60)
    assert timeline.duration == pytest.approx(30 + 10 + 20 + 10)  # the 20 s gap stays, 840 s go
    assert len(timeline.breaks) == 1 and timeline.breaks[0] == pytest.approx((60.0, 840.0))
    assert timeline.at(100) == 0 and timeline.at(155) == pytest.approx(55)
    assert timeline.at(1005) == pytest.approx(65)
    assert timeline.at(50) == 0 and timeline.at(5000) == pytest.approx(70)  # clamped


def test_concurrency_from_overlapping_intervals() -> None:
    requests = [request(0, 2), request(1, 3), request(2, 4)]
    timeline = Timeline.from_intervals((r.started, r.finished) for r in requests)
    mean, peak = concurrency(requests, timeline, 1.0)
    assert mean.values == [1, 2, 2, 1]
    # At t=2 one request ends as another starts: they were never three in flight.
    assert peak.values == [1, 2, 2, 1]


def test_throughput_and_pack_size_per_bucket() -> None:
    requests = [request(0, 0.5, 10), request(0.2, 1.5, 4, items_ok=3), request(2.1, 2.9, 6)]
    timeline = Timeline.from_intervals((r.started, r.finished) for r in requests)
    rate = throughput(requests, timeline, 1.0)
    assert rate.values == [600.0, 180.0, 360.0]  # records per minute in each 1 s bucket
    sizes = pack_sizes(requests, timeline, 1.0)
    assert sizes.values == [7.0, None, 6.0]  # no request started in the middle second


@pytest.mark.parametrize(
    ("duration", "width"), [(0.0, 0.1), (2.8, 0.1), (7, 0.2), (600, 10), (86400, 1800), (10 * 86400, 14400)]
)
def test_bucket_width_keeps_about_sixty_buckets(duration: float, width: float) -> None:
    assert bucket_width(duration) == width


def test_histogram_folds_far_outliers_into_the_last_bin() -> None:
    values = [i / 100 for i in range(1, 201)] + [100.0]
    hist = histogram(values, bins=10)
    assert sum(hist.counts) == 201 and hist.overflow
    assert hist.edges[-1] == pytest.approx(1.99 * 1.05)  # the 99th percentile, and a little room
    assert hist.counts[-1] == sum(v >= hist.edges[-2] for v in values)  # the outlier included
    plain = histogram([0.1, 0.2, 0.3], bins=3)
    assert not plain.overflow and plain.counts == [0, 1, 2]


def test_svg_kit_escapes_and_draws() -> None:
    plot = Plot("chart-x", "<b>t</b>", x_max=10, y_max=7, x_label="a&b", y_label='"y"')
    plot.columns(5.0, [3.0, 0.0], tips=["<tip>", "none"])
    plot.step_line(5.0, [1.0, None])
    svg = plot.render()
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "a&amp;b" in svg and "&lt;tip&gt;" in svg
    assert svg.count('class="data bar"') == 1  # a zero draws nothing
    assert 'class="data line" d="M56 ' in svg
    bars = bar_chart("chart-y", "y", [Bar("free", 0.0, "$0"), Bar("<x>", 2.0, "2")])
    assert bars.count('class="track"') == 2 and bars.count('class="data bar"') == 1
    assert "no data" in message_chart("chart-z", "z", "no data")


def test_axis_steps_and_labels() -> None:
    assert [nice_step(s) for s in (1, 7, 30, 1200)] == [0.2, 2, 10, 500]
    assert [fmt_seconds(s) for s in (0.5, 45, 90, 3600, 5400)] == ["0.5s", "45s", "1m30s", "1h", "1h30m"]
