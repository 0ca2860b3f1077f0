"""Write a call record and its post-call jobs in one transaction, at most once.

The call row's id is the record's id: if it is there, the record was written before (by this node
before a crash, or by a spool flush that committed and then lost its connection) and nothing is
written again. Jobs go in with the record (a transactional outbox), each with a key, so a webhook
is queued exactly when its call is kept, never twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.engine import opened, sessionmaker
from voicebot.db.models import Call, CallEvent
from voicebot.db.repository import JobRepository, JobSpec
from voicebot.records.record import CallRecord

TIMEOUT_S = 10.0


async def write(session: AsyncSession, record: CallRecord, jobs: Sequence[JobSpec] = ()) -> bool:
    """In the caller's transaction; False when the call was already kept."""
    if await session.get(Call, record.call_id) is not None:
        return False
    fields = record.model_dump(exclude={"events"})
    session.add(Call(id=fields.pop("call_id"), **fields))
    await session.flush()
    session.add_all(
        CallEvent(call_id=record.call_id, kind=e.kind, data=e.data, at=e.at) for e in record.events
    )
    await session.flush()
    queue = JobRepository(session)
    for job in jobs:
        await queue.enqueue(job.kind, job.payload, record.ended_at, job.max_attempts, key=job.key)
    return True


async def save(
    url: str, record: CallRecord, jobs: Sequence[JobSpec] = (), timeout_s: float = TIMEOUT_S
) -> bool:
    """Open the database, write, close; bounded in time. Raises when the database cannot take it
    (the caller spools the record); False when it was already there."""
    async with (
        asyncio.timeout(timeout_s),
        opened(url) as engine,
        sessionmaker(engine)() as session,
        session.begin(),
    ):
        return await write(session, record, jobs)
