"""Token estimates and their calibration from reported usage."""

from __future__ import annotations

import pytest

from llmbatch._pack.tokens import Calibration, count_tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("   \n\t", 0),
        ("hello", 1),
        ("hello world", 2),
        ("Hello, world!", 4),
        ("internationalization", 3),  # 8 + 8 + 4 characters
        ('{"k17": "x"}', 9),
        ("😀👍", 2),
    ],
)
def test_count_tokens(text: str, tokens: int) -> None:
    assert count_tokens(text) == tokens


def test_count_grows_with_text() -> None:
    assert count_tokens("word " * 100) == 100
    assert count_tokens("word " * 200) == 2 * count_tokens("word " * 100)


def test_calibration_starts_neutral() -> None:
    calibration = Calibration()
    assert calibration.ratio == 1.0 and calibration.samples == 0
    assert calibration.correct(100) == 100
    assert calibration.correct(0) == 1  # never zero: a request always costs something


def test_first_sample_is_taken_as_is_then_averaged() -> None:
    calibration = Calibration(alpha=0.5)
    calibration.observe(100, 150)
    assert calibration.ratio == pytest.approx(1.5)
    calibration.observe(100, 100)
    assert calibration.ratio == pytest.approx(1.25)
    assert calibration.samples == 2
    assert calibration.correct(200) == 250


def test_calibration_converges() -> None:
    calibration = Calibration()
    for _ in range(60):
        calibration.observe(100, 130)
    assert calibration.ratio == pytest.approx(1.3, abs=1e-3)


def test_calibration_is_bounded() -> None:
    calibration = Calibration()
    calibration.observe(10, 10_000)
    assert calibration.ratio == 4.0
    calibration = Calibration()
    calibration.observe(10_000, 1)
    assert calibration.ratio == 0.25


@pytest.mark.parametrize(("estimated", "reported"), [(0, 100), (100, 0), (-5, 10)])
def test_calibration_ignores_empty_samples(estimated: int, reported: int) -> None:
    calibration = Calibration()
    calibration.observe(estimated, reported)
    assert calibration.ratio == 1.0 and calibration.samples == 0
