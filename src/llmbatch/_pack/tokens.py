"""Token estimates, offline and cheap.

No tokenizer is downloaded at run time. The estimate counts word runs and
punctuation marks (close to BPE counts for English prose), splits long words
the way BPE vocabularies do, and is corrected from the usage the provider
reports (``Calibration``), so packs can be sized to a token budget.
"""

from __future__ import annotations

import re

__all__ = ["MESSAGE_OVERHEAD", "Calibration", "count_tokens", "split_tokens"]

_TOKEN = re.compile(r"\w{1,8}|[^\w\s]", re.UNICODE)

MESSAGE_OVERHEAD = 4
"""Tokens a chat message costs beyond its content (role, delimiters)."""


def count_tokens(text: str) -> int:
    """Estimated tokens in ``text``: one per word piece of up to 8 characters and per symbol."""
    return len(_TOKEN.findall(text))


def split_tokens(text: str) -> list[str]:
    """The pieces ``count_tokens`` counts, in order (the simulator matches cached prefixes on them)."""
    return _TOKEN.findall(text)


class Calibration:
    """Ratio of reported to estimated prompt tokens, learnt from usage.

    An exponential moving average, so a provider whose tokenizer counts
    differently is matched after a few requests and the estimate stays an
    estimate (never below 0.25× or above 4× the raw count).
    """

    __slots__ = ("_alpha", "ratio", "samples")

    def __init__(self, alpha: float = 0.2) -> None:
        self._alpha = alpha
        self.ratio = 1.0
        self.samples = 0

    def observe(self, estimated: int, reported: int) -> None:
        if estimated <= 0 or reported <= 0:
            return
        sample = min(4.0, max(0.25, reported / estimated))
        self.ratio = sample if self.samples == 0 else self.ratio + self._alpha * (sample - self.ratio)
        self.samples += 1

    def correct(self, estimated: int) -> int:
        return max(1, round(estimated * self.ratio))
