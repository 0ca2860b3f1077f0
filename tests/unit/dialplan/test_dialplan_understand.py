"""Caller words -> values: numbers, digits, dates, times, yes/no, options."""

from __future__ import annotations

import datetime as dt

import pytest

from voicebot.dialplan import understand as u

TODAY = dt.date(2026, 11, 24)  # a Tuesday


@pytest.mark.parametrize(
    ("text", "value"),
    [("forty two", 42), ("one hundred and five", 105), ("two thousand twenty six", 2026), ("23", 23),
     ("no idea", None)],
)  # fmt: skip
def test_numbers(text: str, value: int | None) -> None:
    assert u.number(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("four seven one nine", "4719"), ("oh one two", "012"), ("forty seven nineteen", "4719"),
     ("my pin is 1234", "1234"), ("hello", None)],
)  # fmt: skip
def test_digits(text: str, value: str | None) -> None:
    assert u.digits(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("today", TODAY), ("tomorrow", dt.date(2026, 11, 25)), ("the day after tomorrow", dt.date(2026, 11, 26)),
     ("next monday", dt.date(2026, 11, 30)), ("tuesday", dt.date(2026, 12, 1)),
     ("December 3rd", dt.date(2026, 12, 3)), ("the twenty first of march", dt.date(2027, 3, 21)),
     ("5 january 2028", dt.date(2028, 1, 5)), ("2026-12-03", dt.date(2026, 12, 3)),
     ("the thirtieth of february", None), ("whenever", None)],
)  # fmt: skip
def test_dates(text: str, value: dt.date | None) -> None:
    assert u.date(text, TODAY) == value


def test_relative_dates_need_today() -> None:
    assert u.date("tomorrow", None) is None and u.date("2026-12-03", None) == dt.date(2026, 12, 3)


@pytest.mark.parametrize(
    ("text", "value"),
    [("10:30", (10, 30)), ("3 pm", (15, 0)), ("11 a.m.", (11, 0)), ("half past ten", (10, 30)),
     ("quarter to four", (15, 45)), ("ten thirty", (10, 30)), ("noon", (12, 0)),
     ("I'd like to come at ten", (10, 0)), ("two", (14, 0)), ("banana", None)],
)  # fmt: skip
def test_times(text: str, value: tuple[int, int] | None) -> None:
    assert u.time_of_day(text) == (dt.time(*value) if value else None)


def test_yes_no_and_options() -> None:
    assert (u.yes_no("yes please"), u.yes_no("nope"), u.yes_no("I don't know")) == (True, False, None)
    options = [["sales", "buy"], ["support", "customer service"]]
    assert u.match_option("I want to buy", options) == 0
    assert u.match_option("customer service please", options) == 1
    assert u.match_option("sales or support", options) is None  # ambiguous: ask again


def test_words_of_any_script_count() -> None:
    from voicebot.dialplan.understand import match_option, words

    assert words("Sí, por favor! 네, 상담원 연결") == ["sí", "por", "favor", "네", "상담원", "연결"]
    assert match_option("상담원 연결 해주세요", [["상담원 연결"], ["안녕하세요"]]) == 0
    assert match_option("oui, merci", [["non"], ["oui"]]) == 1
