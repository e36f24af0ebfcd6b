"""Agreement measures and the pack-size recommendation rule (``_quality``)."""

from __future__ import annotations

import pytest

from llmbatch._jobs.quality import (
    SizeScore,
    agreement,
    answer_length,
    compare,
    normalise_text,
    numbers_agree,
    recommend,
    text_similarity,
    vote_key,
)
from llmbatch._types import JSON, IdValue

SENTIMENT = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
}


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (0.9, 0.94, True),  # within 0.05
        (0.9, 0.96, False),
        (100, 104.9, True),  # within 5%
        (100, 106, False),
        (0, 0.05, True),
        (-10, -10.4, True),
        (1, 2, False),
    ],
)
def test_numbers_within_a_tolerance(a: float, b: float, same: bool) -> None:
    assert numbers_agree(a, b) is same
    assert agreement(a, b) == (1.0 if same else 0.0)


def test_exact_kinds() -> None:
    assert agreement("positive", "positive") == 1.0
    assert agreement("positive", "negative") == 0.0
    assert agreement(True, True) == 1.0
    assert agreement(True, False) == 0.0
    assert agreement(1, True) == 0.0  # a boolean is not the number 1
    assert agreement(None, None) == 1.0
    assert agreement(None, "x") == 0.0 and agreement("x", None) == 0.0
    assert agreement("ORD-123", "ord-123 ") == 1.0  # short strings: case and spacing only
    assert agreement("Laura Mendes", "Laura Mendez") == 0.0
    assert agreement("a", 1) == 0.0


def test_an_enum_is_exact_even_when_it_is_long() -> None:
    schema = {"enum": ["strongly agree with the claim", "agree with the claim"]}
    assert agreement("strongly agree with the claim", "agree with the claim", schema) == 0.0
    assert agreement("strongly agree with the claim", "agree with the claim") > 0.5  # as free text


def test_free_text_is_graded_by_similarity() -> None:
    reference = "Buenos días, mi amigo. El tren sale cada quince minutos."
    assert agreement(reference, reference) == 1.0
    assert agreement(reference, "  buenos DÍAS,   mi amigo. el tren sale cada quince minutos.") == 1.0
    close = agreement(reference, "Buenos días, amigo. El tren sale cada quince minutos.")
    far = agreement(reference, "Good morning.")
    assert 0.85 < close < 1.0
    assert far < 0.4
    assert text_similarity("abc def ghi jkl", "") == 0.0
    assert normalise_text("  A\tB\n c ") == "a b c"


def test_long_texts_are_not_judged_by_difflib_junk_heuristics() -> None:
    text = " ".join(f"word{i % 37} and more" for i in range(120))  # > 200 characters
    assert text_similarity(text, text.replace("word5 ", "word6 ", 1)) > 0.99


def test_objects_agree_only_when_every_field_does() -> None:
    reference = {"label": "positive", "confidence": 0.9}
    assert agreement(reference, {"label": "positive", "confidence": 0.92}, SENTIMENT) == 1.0
    assert agreement(reference, {"label": "negative", "confidence": 0.9}, SENTIMENT) == 0.0
    assert agreement(reference, {"label": "positive", "confidence": 0.5}, SENTIMENT) == 0.0
    assert agreement(reference, {"label": "positive"}, SENTIMENT) == 0.0  # a field went missing
    graded = agreement(
        {"id": 1, "summary": "the kettle broke after two days"},
        {"id": 1, "summary": "the kettle broke after days"},
    )
    assert 0.8 < graded < 1.0  # the least-agreeing field: the summary's similarity


def test_arrays() -> None:
    assert agreement(["a", "b"], ["a", "b"]) == 1.0
    assert agreement(["a", "b"], ["b", "a"]) == 0.0
    assert agreement(["a"], ["a", "b"]) == 0.0
    assert agreement([], []) == 1.0
    assert agreement([{"n": 1.0}], [{"n": 1.01}]) == 1.0


def test_answer_length_counts_words() -> None:
    assert answer_length("uno dos tres") == 3
    assert answer_length({"label": "positive", "confidence": 0.9, "note": None}) == 2
    assert answer_length(["a b", 3, True]) == 4


def test_compare_by_record_id() -> None:
    reference: dict[IdValue, JSON] = {"a": "yes", "b": "no", "c": "a long free text answer here"}
    packed: dict[IdValue, JSON] = {"a": "yes", "b": "yes", "c": "a long free text answer"}
    result = compare(reference, packed)
    assert result.records == 3
    assert result.agreeing == 1
    assert result.agreement is not None
    assert 0.3 < result.agreement < 2 / 3  # (1 + 0 + similarity) / 3
    assert result.length_ratio == pytest.approx((1 + 1 + 5) / (1 + 1 + 6))
    missing = compare(reference, {"a": "yes"})
    assert missing.agreement == pytest.approx(1 / 3)  # a record not answered at this size disagrees
    assert missing.length_ratio == 1.0  # lengths over records answered at both sizes
    assert compare({}, {"x": 1}).agreement is None


def test_recommend_the_best_merit_above_the_floor() -> None:
    scores = [
        SizeScore(1, 1.0, 100, 1.0),
        SizeScore(5, 0.995, 450, 1.0),
        SizeScore(10, 0.985, 800, 0.9),  # merit 720
        SizeScore(20, 0.97, 2000, 1.0),  # fast but below the floor
    ]
    assert recommend(scores, min_agreement=0.98) == 10
    assert recommend(scores, min_agreement=0.99) == 5
    assert recommend(scores, min_agreement=0.95) == 20
    assert recommend(scores, min_agreement=1.0) == 1


def test_recommend_ties_go_to_the_smaller_size() -> None:
    scores = [SizeScore(1, 1.0, 100, 1.0), SizeScore(5, 1.0, 500, 1.0), SizeScore(10, 1.0, 1000, 0.5)]
    assert recommend(scores, 0.98) == 5


def test_recommend_falls_back_to_one_record_per_request() -> None:
    assert recommend([SizeScore(5, 0.5, 900, 1.0), SizeScore(10, None, None, None)], 0.98) == 1
    assert recommend([], 0.98) == 1
    # a size with no throughput or success figure has no merit, but may still be the only choice
    assert recommend([SizeScore(1, 1.0, None, None)], 0.98) == 1


def test_vote_key() -> None:
    assert vote_key({"b": 1, "a": "Yes"}) == vote_key({"a": "yes ", "b": 1})
    assert vote_key({"a": 0.9}) != vote_key({"a": 0.91})  # exact for numbers
    assert vote_key("Hola  amigo") == vote_key("hola amigo")
    assert vote_key(True) != vote_key("true")
