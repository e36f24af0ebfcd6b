"""Agreement between answers, and the pack size to recommend. Pure functions, no I/O.

``tune`` answers a sample one record per request (the reference) and packed, and
asks how often the packed answer is the same answer. "The same" depends on what
the answer is, read from the item's answer schema where it says, else from the
value itself:

=================================  ==========================================================
enum, const, boolean               equal
number, integer                    within 5% of the larger magnitude, or within 0.05
short string (≤ 3 words)           equal after case folding and collapsing whitespace
free text (> 3 words on a side)    ``difflib`` ratio of the normalised texts, in [0, 1]
array                              same length, and each element agrees (the least of them)
object                             every field agrees: the score of the least-agreeing field
null                               both null
=================================  ==========================================================

An object is scored by its worst field, not by the share of fields that agree:
a record with one wrong field is a wrong record (an extraction with the wrong
amount is not 6/7 right), so the agreement of a pack size reads as "share of
records answered as they are alone". Free text is the one graded case.

    >>> agreement({"label": "positive", "confidence": 0.9}, {"label": "positive", "confidence": 0.92})
    1.0
    >>> recommend([SizeScore(1, 1.0, 100, 1.0), SizeScore(10, 0.99, 900, 1.0)], min_agreement=0.98)
    10
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._task import canonical_json
from .._types import JSON, IdValue

__all__ = [
    "ABS_TOLERANCE",
    "REL_TOLERANCE",
    "TEXT_WORDS",
    "Comparison",
    "SizeScore",
    "agreement",
    "answer_length",
    "compare",
    "normalise_text",
    "numbers_agree",
    "recommend",
    "text_similarity",
    "vote_key",
]

REL_TOLERANCE = 0.05
ABS_TOLERANCE = 0.05
TEXT_WORDS = 3
"""Strings longer than this many words are free text, compared by similarity."""


def numbers_agree(a: float, b: float) -> bool:
    """Equal within 5% of the larger magnitude, or within 0.05 (for values near 0)."""
    diff = abs(a - b)
    return diff <= ABS_TOLERANCE or diff <= REL_TOLERANCE * max(abs(a), abs(b))


def normalise_text(text: str) -> str:
    """Case-folded, with every run of whitespace made one space, stripped."""
    return " ".join(text.casefold().split())


def text_similarity(a: str, b: str) -> float:
    """``difflib.SequenceMatcher`` ratio of the normalised texts: 1.0 identical, 0.0 nothing shared.

    ``autojunk`` is off: on texts over 200 characters it would ignore frequent
    characters (spaces, vowels) and report similar texts as unrelated.
    """
    left, right = normalise_text(a), normalise_text(b)
    if left == right:
        return 1.0
    return difflib.SequenceMatcher(None, left, right, autojunk=False).ratio()


def agreement(reference: JSON, answer: JSON, schema: Mapping[str, Any] | None = None) -> float:
    """How much ``answer`` agrees with ``reference``: 1.0 the same, 0.0 not (graded for free text)."""
    node: Mapping[str, Any] = schema if isinstance(schema, Mapping) else {}
    if reference is None or answer is None:
        return 1.0 if reference is None and answer is None else 0.0
    if "enum" in node or "const" in node or isinstance(reference, bool) or isinstance(answer, bool):
        # By canonical JSON: ``True == 1`` in Python, but a boolean is not the number 1.
        return 1.0 if canonical_json(reference) == canonical_json(answer) else 0.0
    if _is_number(reference) and _is_number(answer):
        return 1.0 if numbers_agree(float(reference), float(answer)) else 0.0
    if isinstance(reference, str) and isinstance(answer, str):
        if max(len(reference.split()), len(answer.split())) > TEXT_WORDS:
            return text_similarity(reference, answer)
        return 1.0 if normalise_text(reference) == normalise_text(answer) else 0.0
    if isinstance(reference, list) and isinstance(answer, list):
        if len(reference) != len(answer):
            return 0.0
        items = _sub(node, "items")
        return min((agreement(r, a, items) for r, a in zip(reference, answer, strict=True)), default=1.0)
    if isinstance(reference, dict) and isinstance(answer, dict):
        props = node.get("properties")
        props = props if isinstance(props, Mapping) else {}
        keys = list(reference) + [k for k in answer if k not in reference]
        return min(
            (agreement(reference.get(k), answer.get(k), _sub(props, k)) for k in keys),
            default=1.0,
        )
    return 0.0


def answer_length(value: JSON) -> int:
    """Words in an answer: words of every string in it, plus one per number or boolean."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, dict):
        return sum(answer_length(v) for v in value.values())
    if isinstance(value, list):
        return sum(answer_length(v) for v in value)
    return 1


@dataclass(frozen=True, slots=True)
class Comparison:
    """Answers at one pack size against the reference answers."""

    records: int
    """Records with a reference answer (those that failed alone cannot be judged)."""
    agreement: float | None
    """Mean agreement over those records; a record with no answer here scores 0."""
    agreeing: int
    """Records in full agreement (score 1.0)."""
    length_ratio: float | None
    """Total answer words here / total words of the same records' reference answers."""


def compare(
    reference: Mapping[IdValue, JSON],
    answers: Mapping[IdValue, JSON],
    schema: Mapping[str, Any] | None = None,
) -> Comparison:
    """Compare answers by record id. Both maps hold only the records answered successfully.

    >>> compare({"a": "yes", "b": "no"}, {"a": "yes"}).agreement
    0.5
    """
    scores: list[float] = []
    ref_words = ans_words = 0
    for record_id, expected in reference.items():
        if record_id not in answers:
            scores.append(0.0)
            continue
        got = answers[record_id]
        scores.append(agreement(expected, got, schema))
        ref_words += answer_length(expected)
        ans_words += answer_length(got)
    return Comparison(
        records=len(scores),
        agreement=sum(scores) / len(scores) if scores else None,
        agreeing=sum(score == 1.0 for score in scores),
        length_ratio=ans_words / ref_words if ref_words else None,
    )


# -- the recommendation --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SizeScore:
    """What the recommendation reads about one pack size."""

    size: int
    agreement: float | None
    items_per_min: float | None
    first_try_rate: float | None

    @property
    def merit(self) -> float:
        """Throughput that came out right the first time: items/min × first-try success."""
        return (self.items_per_min or 0.0) * (self.first_try_rate or 0.0)


def recommend(scores: Sequence[SizeScore], min_agreement: float) -> int:
    """Among sizes whose agreement is at least ``min_agreement``, the one with the best merit.

    Ties go to the smaller size (fewer items share a request's fate). When no size
    holds the floor — not even 1, whose agreement is 1.0 by definition when it is
    listed — the answer is 1: one record per request.
    """
    eligible = [s for s in scores if s.agreement is not None and s.agreement >= min_agreement - 1e-12]
    if not eligible:
        return 1
    best = max(eligible, key=lambda s: (s.merit, -s.size))
    return best.size


# -- voting ----------------------------------------------------------------------


def vote_key(answer: JSON) -> str:
    """What two votes must share to count as the same answer: the canonical JSON, strings normalised.

    Exact for enums, numbers and booleans; objects compare as a whole (every
    field); text ignores case and spacing only.
    """
    return canonical_json(_normalised(answer))


def _normalised(value: JSON) -> JSON:
    if isinstance(value, str):
        return normalise_text(value)
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _sub(node: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    sub = node.get(key)
    return sub if isinstance(sub, Mapping) else None
