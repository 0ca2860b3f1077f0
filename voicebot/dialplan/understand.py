"""What a caller's words or keys mean for a collect or menu: yes/no, numbers, dates, times, choices.

Plain keyword and synonym matching over the recogniser's text (English); deterministic and fast.
Anything not understood is None, which the interpreter treats as "no match" (reprompt).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

_UNITS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
NUMBER_WORDS: dict[str, int] = {w: i for i, w in enumerate(_UNITS)} | {
    w: 20 + 10 * i for i, w in enumerate(_TENS)
}
NUMBER_WORDS |= {"oh": 0, "o": 0, "nought": 0, "a": 1}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_ORDINALS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
]
ORDINAL_WORDS = {w: i + 1 for i, w in enumerate(_ORDINALS)} | {"thirtieth": 30}
MONTHS = {
    m: i + 1
    for i, m in enumerate(
        [
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
    )
}
MONTHS |= {m[:3]: n for m, n in list(MONTHS.items())} | {"sept": 9}
WEEKDAYS = {
    d: i for i, d in enumerate(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])
}
YES = frozenset(
    [
        "yes",
        "yeah",
        "yep",
        "yup",
        "sure",
        "correct",
        "right",
        "ok",
        "okay",
        "affirmative",
        "absolutely",
        "please",
    ]
)
NO = frozenset(["no", "nope", "nah", "wrong", "negative", "incorrect"])


_WORD = re.compile(r"[^\W_]+(?:[:.'][^\W_]+)*")


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (keeps digits, ':' inside times and ordinals' suffixes).
    Any script: "sí", "oui", "네", "상담원" are words too."""
    return _WORD.findall(text.lower().replace("-", " ").replace("_", " "))


def phrase_in(phrase: str, tokens: Sequence[str]) -> bool:
    """Does the (possibly multi-word) ``phrase`` occur in ``tokens`` as whole words?"""
    want = words(phrase)
    n = len(want)
    return n > 0 and any(list(tokens[i : i + n]) == want for i in range(len(tokens) - n + 1))


def match_option(text: str, options: Sequence[Sequence[str]]) -> int | None:
    """Index of the one option whose words/synonyms the caller used; None if none, or several."""
    tokens = words(text)
    hits = {i for i, synonyms in enumerate(options) if any(phrase_in(s, tokens) for s in synonyms)}
    return hits.pop() if len(hits) == 1 else None


def yes_no(text: str) -> bool | None:
    tokens = set(words(text))
    yes, no = bool(tokens & YES), bool(tokens & NO)
    return yes if yes != no else None


def number(text: str) -> int | None:
    """``42``, ``forty two``, ``one hundred and five``, ``two thousand twenty six``."""
    tokens = [t for t in words(text) if t != "and"]
    numeric = [t for t in tokens if t.isdigit()]
    if numeric:
        return int(numeric[0]) if len(numeric) == 1 else None
    total = current = 0
    seen = False
    for t in tokens:
        if t in NUMBER_WORDS and t not in ("a", "o"):
            current += NUMBER_WORDS[t]
            seen = True
        elif t == "a" and seen is False:
            continue
        elif t in _SCALES and (seen or current == 0):
            scale = _SCALES[t]
            if scale == 100:
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * scale
                current = 0
            seen = True
    return total + current if seen else None


def digits(text: str) -> str | None:
    """``4 7 1 9``, ``four seven one nine``, ``forty seven nineteen``, ``oh two`` -> the digit string."""
    out: list[str] = []
    tokens = words(text)
    for i, t in enumerate(tokens):
        if t.isdigit():
            out.append(t)
        elif t in _SCALES:
            out.append("0" * (len(str(_SCALES[t])) - 1))  # "five hundred" -> 5, 00
        elif t in NUMBER_WORDS and t != "a":
            value = NUMBER_WORDS[t]
            following = NUMBER_WORDS.get(tokens[i + 1], 0) if i + 1 < len(tokens) else 0
            # "forty seven" is 47 (the unit fills the tens' zero); "forty" alone is 40
            if t in _TENS and 1 <= following <= 9:
                out.append(str(value // 10))
            else:
                out.append(str(value))
    return "".join(out) or None


def date(text: str, today: dt.date | None) -> dt.date | None:
    """``2026-12-03``, ``tomorrow``, ``next monday``, ``December 3rd``, ``the third of December``."""
    lowered = text.lower()
    iso = re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", lowered)
    if iso:
        return _valid_date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
    tokens = words(lowered)
    month = next((MONTHS[t] for t in tokens if t in MONTHS), None)
    day = _day_of_month(tokens)
    year = next((int(t) for t in tokens if re.fullmatch(r"(19|20)\d\d", t)), None)
    if month is None or day is None:
        return _relative_date(tokens, today) if today is not None else None
    if year is None:
        if today is None:
            return None
        year = today.year
        candidate = _valid_date(year, month, day)
        if candidate is not None and candidate < today:
            year += 1  # "March 3rd" in December means next March
    return _valid_date(year, month, day)


def _relative_date(tokens: list[str], today: dt.date) -> dt.date | None:
    if "today" in tokens:
        return today
    if "tomorrow" in tokens:
        return today + dt.timedelta(days=2 if "after" in tokens else 1)
    for t in tokens:
        if t in WEEKDAYS:
            ahead = (WEEKDAYS[t] - today.weekday()) % 7 or 7
            return today + dt.timedelta(days=ahead)
    return None


def _day_of_month(tokens: list[str]) -> int | None:
    for i, t in enumerate(tokens):
        m = re.fullmatch(r"(\d{1,2})(st|nd|rd|th)?", t)
        if m and 1 <= int(m.group(1)) <= 31:
            return int(m.group(1))
        if t in ORDINAL_WORDS:
            base = ORDINAL_WORDS[t]
            before = tokens[i - 1] if i else ""
            return base + (NUMBER_WORDS[before] if before in ("twenty", "thirty") else 0)
        if t in ("twenty", "thirty") and (i + 1 == len(tokens) or tokens[i + 1] not in ORDINAL_WORDS):
            return NUMBER_WORDS[t]
    return None


def _valid_date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def time_of_day(text: str) -> dt.time | None:
    """``10:30``, ``3 pm``, ``half past ten``, ``quarter to four``, ``ten thirty``, ``noon``.

    Without am/pm, 1 to 6 o'clock mean the afternoon: callers book daytime appointments."""
    spaced = re.sub(r"(\d)\s*([ap])\.?m\b\.?", r"\1 \2m", text.lower())
    tokens = words(spaced.replace("p.m.", "pm").replace("a.m.", "am"))
    if "noon" in tokens or "midday" in tokens:
        return dt.time(12, 0)
    if "midnight" in tokens:
        return dt.time(0, 0)
    meridiem = "pm" if {"pm", "evening", "afternoon"} & set(tokens) else "am" if "am" in tokens else ""
    hour, minute = _clock(tokens)
    if hour is None or not 0 <= hour <= 23 or not 0 <= minute <= 59:
        return None
    if meridiem == "pm" and hour < 12:
        hour += 12
    elif meridiem == "am" and hour == 12:
        hour = 0
    elif not meridiem and 1 <= hour <= 6:
        hour += 12
    return dt.time(hour, minute)


def _clock(tokens: list[str]) -> tuple[int | None, int]:
    joined = " ".join(tokens)
    m = re.search(r"\b(\d{1,2})[:.](\d{2})\b", joined) or re.search(r"\b(\d{1,2})(?:am|pm)?\b", joined)
    if m:
        minute = int(m.group(2)) if m.lastindex and m.lastindex >= 2 else 0
        return int(m.group(1)), minute
    relative = re.search(r"\b(half|quarter|[a-z]+) (past|to) ([a-z]+)\b", joined)
    if relative and relative.group(3) in NUMBER_WORDS:
        amount, way, hour = relative.groups()
        offset = {"half": 30, "quarter": 15}.get(amount, NUMBER_WORDS.get(amount, -1))
        if offset < 0:
            return None, 0
        h = NUMBER_WORDS[hour]
        return (h, offset) if way == "past" else ((h - 1) % 24, 60 - offset)
    numbers = [NUMBER_WORDS[t] for t in tokens if t in NUMBER_WORDS and t not in ("a", "o")]
    if not numbers:
        return None, 0
    minute = sum(numbers[1:]) if len(numbers) > 1 else 0  # "ten thirty five"
    return numbers[0], minute
