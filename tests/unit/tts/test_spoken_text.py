"""Dates and times as people say them on the phone."""

from __future__ import annotations

import pytest

from voicebot.tts.spoken import naturally


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("I will move it to 2026-12-08 at 15:00.", "I will move it to Tuesday, December 8 at 3 PM."),
        ("at 09:30", "at 9:30 AM"),
        ("at 00:00 or 12:00", "at midnight or noon"),
        ("at 10:15 am", "at 10:15 am"),  # already spoken form
        ("reference 2026-13-45", "reference 2026-13-45"),  # not a date: left alone
        ("call 555-0100", "call 555-0100"),
        ("Hello there.", "Hello there."),
    ],
)
def test_iso_dates_and_24_hour_times_are_spoken_naturally(written: str, spoken: str) -> None:
    assert naturally(written) == spoken


def test_phone_numbers_are_read_digit_by_digit_in_groups() -> None:
    assert naturally("We will call +12125550123.") == "We will call plus 1, 2 1 2, 5 5 5, 0 1 2 3."
    assert naturally("Call 2125550123 back") == "Call 2 1 2, 5 5 5, 0 1 2 3 back"
    # an amount, not a number to dial
    assert naturally("That is 1234567 dollars") == "That is 1234567 dollars"
