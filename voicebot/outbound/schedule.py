"""When a callback rings (pure): the caller's chosen day and time in the business's time zone,
within calling hours and the booking horizon; "as soon as possible" is moved into calling hours."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

from voicebot.outbound.settings import OutboundSettings


@dataclass(frozen=True)
class TooLate:
    reason: str  # said to nobody: the step's error path speaks; this goes to the record


def zone(cfg: OutboundSettings) -> dt.tzinfo:
    return zoneinfo.ZoneInfo(cfg.timezone) if cfg.timezone else machine_zone()


@functools.cache
def machine_zone() -> dt.tzinfo:
    """This machine's zone with its rules (TZ, else /etc/localtime), so a callback booked in winter
    for a summer day rings at the caller's clock time; a fixed offset only when no name is known."""
    names = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError, IndexError):
        names.append(str(Path("/etc/localtime").resolve()).split("/zoneinfo/", 1)[1])
    with contextlib.suppress(OSError):
        names.append(Path("/etc/timezone").read_text().strip())
    for name in filter(None, names):
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
    local = dt.datetime.now().astimezone().tzinfo
    assert local is not None
    return local


def _hours(cfg: OutboundSettings) -> tuple[dt.time, dt.time | None]:
    start, end = cfg.calling_hours.split("-")
    h, m = map(int, end.split(":"))
    return dt.time.fromisoformat(start), None if h == 24 else dt.time(h, m)  # None: until midnight


def in_hours(at: dt.datetime, cfg: OutboundSettings) -> bool:
    start, end = _hours(cfg)
    clock = at.astimezone(zone(cfg)).time()
    return start <= clock and (end is None or clock < end)


def next_window(at: dt.datetime, cfg: OutboundSettings) -> dt.datetime:
    """``at`` if calls may ring then, else the start of the next calling-hours window."""
    if in_hours(at, cfg):
        return at
    tz = zone(cfg)
    start, _ = _hours(cfg)
    local = at.astimezone(tz)
    today = dt.datetime.combine(local.date(), start, tz)
    return today if today > local else dt.datetime.combine(local.date() + dt.timedelta(days=1), start, tz)


def when(
    now: dt.datetime,
    cfg: OutboundSettings,
    date: str = "",
    time: str = "",
    after_s: float = 0.0,
) -> dt.datetime | TooLate:
    """The moment to ring: ``date`` (YYYY-MM-DD, default the next day the time comes) at ``time``
    (HH:MM, local), or ``after_s`` from now, moved into calling hours. Aware datetimes in, UTC out."""
    tz = zone(cfg)
    local_now = now.astimezone(tz)
    if time:
        try:
            clock = dt.time.fromisoformat(time)
            day = dt.date.fromisoformat(date) if date else local_now.date()
        except ValueError:
            return TooLate(f"not a date/time: {date!r} {time!r}")
        at = dt.datetime.combine(day, clock, tz)
        if not date and at <= local_now:
            at = dt.datetime.combine(day + dt.timedelta(days=1), clock, tz)
        if at < local_now - dt.timedelta(minutes=1):
            return TooLate("that time has passed")
        if not in_hours(at, cfg):
            return TooLate(f"outside calling hours ({cfg.calling_hours})")
    elif date:
        return TooLate("a callback date needs a time")
    else:
        at = next_window(now + dt.timedelta(seconds=max(0.0, after_s)), cfg)
    if at - now > dt.timedelta(days=cfg.max_days_ahead, hours=23, minutes=59):
        return TooLate(f"more than {cfg.max_days_ahead} days ahead")
    return at.astimezone(dt.UTC)
