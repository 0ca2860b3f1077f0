"""Redaction and the retention purge: what an admin's `jobs.redact_after_days` and
`jobs.retention_days` promise, run by the job queue once per `jobs.maintenance_interval_s`."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import Call, CallEvent
from voicebot.db.repository import JobRepository
from voicebot.records.record import PII_FIELDS, REDACTED

BATCH = 500


async def redact_before(session: AsyncSession, cutoff: dt.datetime) -> int:
    """Caller numbers and transcript text of calls that started before ``cutoff``; returns how
    many events were changed (running it again changes nothing)."""
    await session.execute(update(Call).where(Call.started_at < cutoff, Call.caller != "").values(caller=""))
    changed = 0
    last_id = 0
    while True:
        rows = (
            (
                await session.execute(
                    select(CallEvent)
                    .join(Call)
                    .where(Call.started_at < cutoff, CallEvent.id > last_id)
                    .order_by(CallEvent.id)
                    .limit(BATCH)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            return changed
        for ev in rows:
            last_id = ev.id
            if any(k in ev.data and ev.data[k] != REDACTED for k in PII_FIELDS):
                ev.data = {k: (REDACTED if k in PII_FIELDS else v) for k, v in ev.data.items()}
                changed += 1
        await session.flush()


async def purge_before(session: AsyncSession, cutoff: dt.datetime) -> int:
    """Calls that started before ``cutoff``, with their events; and done jobs as old."""
    old = select(Call.id).where(Call.started_at < cutoff)
    await session.execute(delete(CallEvent).where(CallEvent.call_id.in_(old)))
    res = await session.execute(delete(Call).where(Call.started_at < cutoff))
    await JobRepository(session).purge_finished(cutoff)
    return int(res.rowcount or 0)  # type: ignore[attr-defined]
