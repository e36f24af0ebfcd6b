"""Regex extractors the oracle uses for fields named like email, phone, date or amount.

Each returns the first match in reading order, or ``None`` when the text has
none, so "null when absent" falls out of the extractor rather than a guess.
They aim to be plausible on customer messages, not complete.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["EXTRACTORS", "amount", "date", "email", "name", "order_id", "phone", "url"]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Not preceded by a word character, so "DE123456789" or "ORD-10482" are not phones.
_PHONE = re.compile(r"(?<![\w+(-])\+?\(?\d[\d\s().-]{5,}\d")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
_DAY_MONTH_YEAR = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH}\s+(\d{{4}})\b", re.I)
_ORDER_ID = re.compile(r"\b[A-Z]{2,5}-\d{3,}\b")
_URL = re.compile(r"https?://[^\s<>\"']+")
_AMOUNT = re.compile(
    r"(?:[$€£¥]\s?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?))"
    r"|(?:\b(\d+(?:\.\d+)?)\s?(?:USD|EUR|GBP|dollars|euros)\b)"
)
_SIGN_OFF = re.compile(
    r"(?:^|\n|[.!]\s)\s*(?:best regards|kind regards|regards|thanks|thank you|best|cheers|"
    r"sincerely|atentamente)\s*[,!]?\s*(?:\n\s*)?([^\n]*)",
    re.I,
)
_DASH = re.compile(r"(?:^|\s)[—–-]\s+([^\n]*)")
_INTRO = re.compile(r"\b(?:my name is|i'm|i am|name:)\s+([^\n]*)", re.I)


def email(text: str) -> str | None:
    match = _EMAIL.search(text)
    return match.group(0).rstrip(".") if match else None


def phone(text: str) -> str | None:
    """The first run of 7 to 15 digits written like a phone number, as written."""
    for match in _PHONE.finditer(text):
        candidate = match.group(0).strip(" .-")
        if candidate.startswith("(") and ")" not in candidate:
            candidate = candidate[1:]
        digits = sum(ch.isdigit() for ch in candidate)
        if 7 <= digits <= 15 and not _ISO_DATE.search(candidate):
            return candidate
    return None


def date(text: str) -> str | None:
    """The first date in the text as ISO yyyy-mm-dd."""
    found: list[tuple[int, str]] = []
    for match in _ISO_DATE.finditer(text):
        iso = _iso(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        if iso:
            found.append((match.start(), iso))
    for match in _MONTH_DAY_YEAR.finditer(text):
        iso = _iso(int(match.group(3)), _month(match.group(1)), int(match.group(2)))
        if iso:
            found.append((match.start(), iso))
    for match in _DAY_MONTH_YEAR.finditer(text):
        iso = _iso(int(match.group(3)), _month(match.group(2)), int(match.group(1)))
        if iso:
            found.append((match.start(), iso))
    return min(found)[1] if found else None


def order_id(text: str) -> str | None:
    match = _ORDER_ID.search(text)
    return match.group(0) if match else None


def url(text: str) -> str | None:
    match = _URL.search(text)
    return match.group(0).rstrip(".,;:!?)") if match else None


def amount(text: str) -> float | None:
    """The first money amount ("$49.99", "€1,240.00", "120 EUR") as a number."""
    match = _AMOUNT.search(text)
    if match is None:
        return None
    return float((match.group(1) or match.group(2)).replace(",", ""))


def name(text: str) -> str | None:
    """A sender's name from a sign-off, a dash signature or a self-introduction."""
    for pattern in (_SIGN_OFF, _DASH, _INTRO):
        for match in pattern.finditer(text):
            found = _capitalised_words(match.group(1))
            if found:
                return found
    return None


def _capitalised_words(fragment: str) -> str | None:
    words: list[str] = []
    for word in fragment.split():
        cleaned = word.strip(",;:()")
        if not cleaned or not cleaned[0].isupper() or not cleaned.replace("-", "").isalpha():
            if "'" in cleaned and cleaned[0].isupper():  # O'Sullivan
                words.append(cleaned)
                continue
            break
        words.append(cleaned)
        if word.endswith((",", ";", ")")) or len(words) == 4:
            break
    return " ".join(words) or None


def _month(word: str) -> int:
    prefix = word.lower()[:3]
    return next(i for i, full in enumerate(_MONTHS, start=1) if full.startswith(prefix))


def _iso(year: int, month: int, day: int) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31 and 1000 <= year <= 9999):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}"


EXTRACTORS: dict[str, Callable[[str], str | float | None]] = {
    "email": email,
    "phone": phone,
    "date": date,
    "order_id": order_id,
    "url": url,
    "amount": amount,
    "price": amount,
    "name": name,
}
"""Extractor by property name."""
