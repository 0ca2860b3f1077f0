"""A `callback` step's booking, done for the call's engine (an effect): the number and time are
checked, then the `outbound` job is on the durable queue before the bot says it is booked."""

from __future__ import annotations

import datetime as dt
from typing import Any

from voicebot.callworker.params import CallWorkerParams
from voicebot.dialplan.events import ScheduleCallback
from voicebot.ipc import proto
from voicebot.logs import get_logger, masked_number
from voicebot.outbound import schedule
from voicebot.outbound.book import BookingRefused, book, checked

log = get_logger(__name__)


async def book_callback(
    params: CallWorkerParams, start: proto.CallStart, cb: ScheduleCallback, key: str
) -> tuple[bool, dict[str, Any]]:
    """(True, {"at": local "YYYY-MM-DD HH:MM", "number", "job"}) or (False, {"status", "error"})."""
    cfg = params.outbound
    trunk = start.trunk if start.trunk in params.dial_trunks else ""
    try:
        checked(cfg, params.dial_trunks, cb.number, trunk)
    except BookingRefused as exc:
        return False, {"status": "refused", "error": str(exc)}
    when = schedule.when(dt.datetime.now(dt.UTC), cfg, cb.date, cb.time, cb.after_s)
    if isinstance(when, schedule.TooLate):
        return False, {"status": "refused", "error": when.reason}
    if not params.database_url:
        return False, {"status": "error", "error": "no database keeps bookings (database.url)"}
    try:
        booking = await book(
            params.database_url,
            cfg,
            params.dial_trunks,
            number=cb.number,
            at=when,
            dialplan=start.dialplan,
            entry=cb.entry,
            variables=cb.variables,
            key=key,
            origin=start.call_id,
            trunk=trunk,
        )
    except BookingRefused as exc:
        return False, {"status": "refused", "error": str(exc)}
    except Exception as exc:  # the database is away: the plan's error path says we could not
        return False, {"status": "error", "error": f"not booked: {type(exc).__name__}: {str(exc)[:150]}"}
    at = booking.at if booking.at.tzinfo else booking.at.replace(tzinfo=dt.UTC)  # SQLite: naive UTC
    local = at.astimezone(schedule.zone(cfg))
    number = masked_number(booking.number)
    log.info("callback.booking", job=booking.job_id, at=local.isoformat(), number=number)
    return True, {"at": local.strftime("%Y-%m-%d %H:%M"), "number": booking.number, "job": booking.job_id}
