"""When a callback rings: chosen times, calling hours, the booking horizon (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from voicebot.outbound.schedule import TooLate, in_hours, machine_zone, next_window, when
from voicebot.outbound.settings import OutboundSettings

CFG = OutboundSettings(timezone="Europe/London", calling_hours="08:00-21:00", max_days_ahead=14)
LONDON = dt.timezone(dt.timedelta(0))  # December: London is UTC+0


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=LONDON)


def test_a_time_later_today_is_today_and_an_earlier_one_tomorrow() -> None:
    now = at(7, 10)
    assert when(now, CFG, time="15:30") == at(7, 15, 30)
    assert when(now, CFG, time="09:15") == at(8, 9, 15)


def test_a_date_and_time_is_that_moment_unless_it_has_passed() -> None:
    now = at(7, 10)
    assert when(now, CFG, date="2026-12-09", time="08:00") == at(9, 8)
    assert when(now, CFG, date="2026-12-06", time="12:00") == TooLate("that time has passed")
    assert isinstance(when(now, CFG, date="2026-12-07", time="25:00"), TooLate)
    assert when(now, CFG, date="2026-12-09") == TooLate("a callback date needs a time")


def test_chosen_times_outside_calling_hours_or_too_far_ahead_are_refused() -> None:
    now = at(7, 10)
    assert when(now, CFG, time="22:30") == TooLate("outside calling hours (08:00-21:00)")
    assert when(now, CFG, date="2027-01-30", time="10:00") == TooLate("more than 14 days ahead")


def test_as_soon_as_possible_moves_into_calling_hours() -> None:
    assert when(at(7, 10), CFG, after_s=600) == at(7, 10, 10)
    assert when(at(7, 20, 55), CFG, after_s=600) == at(8, 8)  # 21:05 is closed: tomorrow 08:00
    assert when(at(7, 3), CFG) == at(7, 8)
    assert next_window(at(7, 12), CFG) == at(7, 12)


def test_hours_to_midnight_and_other_zones() -> None:
    late = OutboundSettings(timezone="America/New_York", calling_hours="08:00-24:00")
    ny = dt.datetime(2026, 12, 7, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert in_hours(ny, late)
    assert when(ny, late, time="23:45") == dt.datetime(2026, 12, 8, 4, 45, tzinfo=dt.UTC)
    assert when(ny, late, time="23:45").tzinfo == dt.UTC  # type: ignore[union-attr]


def test_a_summer_callback_booked_in_winter_rings_at_the_summer_clock_time() -> None:
    cfg = OutboundSettings(timezone="Europe/London", max_days_ahead=90, calling_hours="08:00-21:00")
    booked = when(at(5, 10), cfg, date="2027-03-02", time="10:00")
    assert booked == dt.datetime(2027, 3, 2, 10, 0, tzinfo=dt.UTC)  # GMT still
    cfg_far = OutboundSettings(timezone="Europe/Berlin", max_days_ahead=90)
    march = when(dt.datetime(2027, 3, 20, 9, tzinfo=dt.UTC), cfg_far, date="2027-04-01", time="10:00")
    assert march == dt.datetime(2027, 4, 1, 8, 0, tzinfo=dt.UTC)  # CEST, UTC+2


def test_calling_hours_must_start_before_they_end() -> None:
    for bad in ("21:00-08:00", "09:00-09:00", "9-17"):
        with pytest.raises(ValueError, match="calling_hours"):
            OutboundSettings(calling_hours=bad)


def test_the_machine_zone_is_a_named_zone_with_rules_when_one_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    machine_zone.cache_clear()
    monkeypatch.setenv("TZ", "America/Chicago")
    try:
        assert str(machine_zone()) == "America/Chicago"
    finally:
        machine_zone.cache_clear()
