"""Repositories: small typed query objects that take the session (the caller owns the transaction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from voicebot.db.models import Call, CallEvent, Job


class CallRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def create(self, call_id: str, sip_call_id: str, trunk: str, **fields: Any) -> Call:
        call = Call(id=call_id, sip_call_id=sip_call_id, trunk=trunk, **fields)
        self.s.add(call)
        await self.s.flush()
        return call

    async def answered(self, call_id: str, at: datetime) -> None:
        await self.s.execute(update(Call).where(Call.id == call_id).values(answered_at=at))

    async def ended(
        self,
        call_id: str,
        at: datetime,
        disposition: str,
        reason: str = "",
        transfer_queue: str | None = None,
    ) -> None:
        await self.s.execute(
            update(Call)
            .where(Call.id == call_id)
            .values(ended_at=at, disposition=disposition, end_reason=reason, transfer_queue=transfer_queue)
        )

    async def add_event(self, call_id: str, kind: str, data: dict[str, Any], at: datetime) -> None:
        self.s.add(CallEvent(call_id=call_id, kind=kind, data=data, at=at))
        await self.s.flush()

    async def replace_event(self, call_id: str, kind: str, data: dict[str, Any], at: datetime) -> None:
        """The call's one event of ``kind`` (a summary written again replaces the first)."""
        await self.s.execute(delete(CallEvent).where(CallEvent.call_id == call_id, CallEvent.kind == kind))
        await self.add_event(call_id, kind, data, at)

    async def get(self, call_id: str) -> Call | None:
        res = await self.s.execute(select(Call).where(Call.id == call_id).options(selectinload(Call.events)))
        return res.scalar_one_or_none()

    async def recent(self, limit: int = 50) -> list[Call]:
        res = await self.s.execute(select(Call).order_by(Call.started_at.desc(), Call.id).limit(limit))
        return list(res.scalars())


@dataclass(frozen=True)
class JobSpec:
    """A job to enqueue: ``key`` makes it idempotent (a second enqueue with the key is ignored)."""

    kind: str
    key: str
    payload: dict[str, Any] = field(default_factory=dict)
    max_attempts: int = 5


class JobRepository:
    """A durable queue: claim is atomic (FOR UPDATE SKIP LOCKED on PostgreSQL, one UPDATE on SQLite)."""

    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        now: datetime,
        max_attempts: int = 5,
        key: str | None = None,
    ) -> Job | None:
        """Queue a job; with a ``key`` that is already queued (in any state) nothing happens: None."""
        if key is None:
            job = Job(kind=kind, payload=payload, run_after=now, max_attempts=max_attempts, status="queued")
            self.s.add(job)
            await self.s.flush()
            return job
        values = {
            "kind": kind,
            "key": key,
            "payload": payload,
            "run_after": now,
            "max_attempts": max_attempts,
            "status": "queued",
            "attempts": 0,
        }
        dialect = self.s.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(Job).values(**values).on_conflict_do_nothing(index_elements=["key"]).returning(Job.id)
        new_id = (await self.s.execute(stmt)).scalar_one_or_none()
        return None if new_id is None else await self.s.get(Job, new_id)

    async def claim_next(
        self,
        worker: str,
        now: datetime,
        lease: timedelta = timedelta(minutes=5),
        skip_kinds: tuple[str, ...] = (),
        only_kinds: tuple[str, ...] = (),
    ) -> Job | None:
        """The next due job, now this worker's; ``skip_kinds``: kinds it cannot run (outbound calls
        need a node's UA workers); ``only_kinds``: the kinds it runs (() = all)."""
        kinds: tuple[Any, ...] = (Job.kind.not_in(skip_kinds),) if skip_kinds else ()
        if only_kinds:
            kinds += (Job.kind.in_(only_kinds),)
        candidate = (
            select(Job.id)
            .where(Job.status == "queued", Job.run_after <= now, *kinds)
            .order_by(Job.run_after, Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        stmt = (
            update(Job)
            .where(Job.id == candidate, Job.status == "queued")
            .values(status="running", locked_by=worker, locked_until=now + lease, attempts=Job.attempts + 1)
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        res = await self.s.execute(stmt)
        return res.scalar_one_or_none()

    async def complete(self, job_id: int, worker: str | None = None) -> bool:
        """Mark done; with ``worker``, only while that worker still holds the job (a worker whose
        lease ran out must not overwrite what the job's next worker did). False if it did not."""
        stmt = update(Job).where(Job.id == job_id)
        if worker is not None:
            stmt = stmt.where(Job.locked_by == worker, Job.status == "running")
        res = await self.s.execute(stmt.values(status="done", locked_by=None, locked_until=None))
        return bool(res.rowcount)  # type: ignore[attr-defined]

    async def fail(
        self,
        job: Job,
        error: str,
        now: datetime,
        base_delay: timedelta = timedelta(seconds=30),
        permanent: bool = False,
    ) -> str:
        """Retry with exponential back-off, or give up after max_attempts (or at once when
        ``permanent``: the far end refused the job itself); return the new status."""
        status = "failed" if permanent or job.attempts >= job.max_attempts else "queued"
        delay = base_delay * (2 ** max(0, job.attempts - 1))
        held = (Job.locked_by == job.locked_by,) if job.locked_by else ()  # still ours, not the next worker's
        await self.s.execute(
            update(Job)
            .where(Job.id == job.id, *held)
            .values(
                status=status,
                last_error=error[:2000],
                run_after=now + delay,
                locked_by=None,
                locked_until=None,
            )
        )
        return status

    async def defer(self, job: Job, why: str, until: datetime) -> None:
        """Not now, and not the job's fault (calling hours, a trunk's limit): back to the queue
        for ``until`` without using an attempt."""
        held = (Job.locked_by == job.locked_by,) if job.locked_by else ()
        await self.s.execute(
            update(Job)
            .where(Job.id == job.id, *held)
            .values(
                status="queued",
                attempts=Job.attempts - 1,
                last_error=f"deferred: {why}"[:2000],
                run_after=until,
                locked_by=None,
                locked_until=None,
            )
        )

    async def retry(self, job_id: int, now: datetime) -> bool:
        """A dead letter (failed) back to the queue with its attempts counted from zero."""
        res = await self.s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "failed")
            .values(status="queued", attempts=0, run_after=now, last_error=None)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]

    async def get(self, job_id: int) -> Job | None:
        return await self.s.get(Job, job_id)

    async def listing(self, status: str | None = None, limit: int = 50) -> list[Job]:
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if status:
            query = query.where(Job.status == status)
        return list((await self.s.execute(query)).scalars())

    async def counts(self) -> dict[str, int]:
        res = await self.s.execute(select(Job.status, func.count()).group_by(Job.status))
        return {status: int(n) for status, n in res.all()}

    async def purge_finished(self, before: datetime) -> int:
        """Done jobs older than ``before`` (dead letters stay until someone looks at them)."""
        res = await self.s.execute(delete(Job).where(Job.status == "done", Job.updated_at < before))
        return int(res.rowcount or 0)  # type: ignore[attr-defined]

    async def requeue_expired(self, now: datetime) -> int:
        """Jobs whose worker died mid-run go back to the queue when their lease ends; one that has
        had all its attempts (it takes its worker down every time) becomes a dead letter."""
        expired = (Job.status == "running", Job.locked_until < now)
        # No in-Python evaluation against loaded jobs (SQLite hands back naive datetimes): the
        # session's copies are refreshed when next read.
        sync = {"synchronize_session": "fetch"}
        await self.s.execute(
            update(Job)
            .where(*expired, Job.attempts >= Job.max_attempts)
            .values(
                status="failed",
                locked_by=None,
                locked_until=None,
                last_error="its worker died or hung on every attempt (lease expired)",
            )
            .execution_options(**sync)
        )
        res = await self.s.execute(
            update(Job)
            .where(*expired)
            .values(status="queued", locked_by=None, locked_until=None)
            .execution_options(**sync)
        )
        return int(res.rowcount or 0)  # type: ignore[attr-defined]
