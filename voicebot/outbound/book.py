"""Booking an outbound call: the destination policy and the time are checked, then an `outbound`
job goes on the durable queue (run_after = the time). Used by a `callback` step (call worker) and by
`voicebot call` (CLI); the job's key makes booking twice (a resumed call) booking once."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from voicebot.db.engine import opened, sessionmaker
from voicebot.db.models import Job
from voicebot.db.repository import JobRepository
from voicebot.outbound import policy
from voicebot.outbound.settings import OutboundSettings

KIND = "outbound"
TIMEOUT_S = 5.0


class BookingRefused(Exception):
    """Not bookable: the number, the time or the setup says no (the message says which)."""


@dataclass(frozen=True)
class Booking:
    job_id: int
    at: dt.datetime  # UTC
    number: str  # E.164
    trunk: str


def checked(cfg: OutboundSettings, trunks: Sequence[str], number: str, trunk: str = "") -> tuple[str, str]:
    """(E.164 number, trunk) or BookingRefused: outbound on, a trunk that can dial, a number the
    destination policy allows."""
    if not cfg.enabled:
        raise BookingRefused("outbound calls are off (outbound.enabled)")
    if not trunks:
        raise BookingRefused("no trunk can place calls (trunks[].dial)")
    if trunk and trunk not in trunks:
        raise BookingRefused(f"trunk {trunk!r} cannot place calls (it has no `dial`)")
    verdict = policy.check(number, cfg.policy)
    if isinstance(verdict, policy.Refused):
        raise BookingRefused(f"number refused: {verdict.reason}")
    return verdict.e164, trunk or trunks[0]


async def book(
    url: str,
    cfg: OutboundSettings,
    trunks: Sequence[str],
    *,
    number: str,
    at: dt.datetime,
    dialplan: str,
    entry: str = "",
    variables: dict[str, Any] | None = None,
    key: str,
    origin: str = "",
    trunk: str = "",
) -> Booking:
    e164, chosen = checked(cfg, trunks, number, trunk)
    payload = {
        "number": e164,
        "trunk": chosen,
        "dialplan": dialplan,
        "entry": entry,
        "variables": dict(variables or {}),
        "origin": origin,
        "at": at.astimezone(dt.UTC).isoformat(),  # the promised time: the dialer gives up far past it
    }
    async with (
        asyncio.timeout(TIMEOUT_S),
        opened(url) as engine,
        sessionmaker(engine)() as session,
        session.begin(),
    ):
        job = await JobRepository(session).enqueue(KIND, payload, at, cfg.max_attempts, key=key)
        if job is None:  # booked before (the call's previous worker did it): that booking stands
            job = (await session.execute(select(Job).where(Job.key == key))).scalar_one()
        return Booking(job.id, job.run_after, str(job.payload.get("number", e164)), chosen)
