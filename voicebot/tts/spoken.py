"""Text as it should be heard on the phone (pure): ISO dates and 24-hour times, which dialplans and
tools use in variables ("2026-12-08", "15:00"), are read the way people say them ("Tuesday,
December 8", "3 PM"); the written text stays as it is in the call's record."""

from __future__ import annotations

import datetime as dt
import re

_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
# A phone number (E.164, or 10+ digits) is read digit by digit in groups, not as a huge number.
_PHONE = re.compile(r"(?<![\w+])(\+\d{7,15}|\d{10,15})\b")
_TIME = re.compile(r"\b([01]?[0-9]|2[0-3]):([0-5][0-9])\b(?!\s*(?:am|pm|a\.m\.|p\.m\.))", re.IGNORECASE)


def _date(m: re.Match[str]) -> str:
    try:
        day = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return m.group(0)
    return f"{day:%A}, {day:%B} {day.day}"


def _time(m: re.Match[str]) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour == 0 and minute == 0:
        return "midnight"
    if hour == 12 and minute == 0:
        return "noon"
    half = "AM" if hour < 12 else "PM"
    h12 = hour % 12 or 12
    return f"{h12} {half}" if minute == 0 else f"{h12}:{minute:02d} {half}"


def _phone(m: re.Match[str]) -> str:
    digits = m.group(1).lstrip("+")
    # the last four together, the rest in threes: "2 1 2, 5 5 5, 0 1 2 3"
    head, tail = digits[:-4], digits[-4:]
    groups = [*[head[max(0, i - 3) : i] for i in range(len(head), 0, -3)][::-1], tail]
    spoken = ", ".join(" ".join(g) for g in groups if g)
    return ("plus " if m.group(1).startswith("+") else "") + spoken


def naturally(text: str) -> str:
    """``text`` with ISO dates, 24-hour times and phone numbers as they are spoken."""
    if ":" not in text and "-" not in text and not any(c.isdigit() for c in text):
        return text
    return _PHONE.sub(_phone, _TIME.sub(_time, _DATE.sub(_date, text)))
