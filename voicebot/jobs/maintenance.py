"""Redaction and the retention purge: what an admin's `jobs.redact_after_days` and
`jobs.retention_days` promise, run by the job queue once per `jobs.maintenance_interval_s`."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import Call, CallEvent
from voicebot.db.repository import JobRepository
from voicebot.records.record import PII_FIELDS, REDACTED

BATCH = 200  # calls per transaction


async def redact_before(session: AsyncSession, cutoff: dt.datetime) -> int:
    """Up to BATCH calls that started before ``cutoff`` and are not redacted yet: their caller
    number becomes <redacted> (which also marks them done) and so does their transcript text.
    Returns how many calls (0: nothing left)."""
    ids = list(
        await session.scalars(
            select(Call.id)
            .where(Call.started_at < cutoff, Call.caller != REDACTED)
            .order_by(Call.id)
            .limit(BATCH)
        )
    )
    if not ids:
        return 0
    for ev in (await session.scalars(select(CallEvent).where(CallEvent.call_id.in_(ids)))).all():
        if any(k in ev.data and ev.data[k] != REDACTED for k in PII_FIELDS):
            ev.data = {k: (REDACTED if k in PII_FIELDS else v) for k, v in ev.data.items()}
    await session.execute(update(Call).where(Call.id.in_(ids)).values(caller=REDACTED))
    return len(ids)


async def purge_before(session: AsyncSession, cutoff: dt.datetime) -> int:
    """Up to BATCH calls that started before ``cutoff``, with their events (and, with the last
    batch, done jobs as old); returns how many calls (0: nothing left)."""
    ids = list(await session.scalars(select(Call.id).where(Call.started_at < cutoff).limit(BATCH)))
    if not ids:
        await JobRepository(session).purge_finished(cutoff)
        return 0
    await session.execute(delete(CallEvent).where(CallEvent.call_id.in_(ids)))
    await session.execute(delete(Call).where(Call.id.in_(ids)))
    return len(ids)
