"""Repositories and migrations on real SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from voicebot.db.engine import sessionmaker
from voicebot.db.migrate import downgrade, upgrade
from voicebot.db.models import Base
from voicebot.db.repository import CallRepository, JobRepository

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def test_migrations_match_the_models(engine: AsyncEngine) -> None:
    def diff(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_downgrade_and_upgrade_again(db_url: str, engine: AsyncEngine) -> None:
    await asyncio.to_thread(downgrade, db_url, "base")
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: c.dialect.get_table_names(c))
    assert "calls" not in tables
    await asyncio.to_thread(upgrade, db_url)


async def test_call_lifecycle_round_trip(engine: AsyncEngine) -> None:
    async with sessionmaker(engine)() as s, s.begin():
        calls = CallRepository(s)
        await calls.create("c1", "sip-1@host", "pbx", caller="+15550100", callee="100", ua_worker=2)
        await calls.answered("c1", T0)
        await calls.add_event("c1", "dtmf", {"digit": "1"}, T0 + timedelta(seconds=3))
        await calls.add_event("c1", "transfer_result", {"ok": True}, T0 + timedelta(seconds=5))
        await calls.ended("c1", T0 + timedelta(seconds=6), "transferred", "caller asked", "sales")
    async with sessionmaker(engine)() as s:
        call = await CallRepository(s).get("c1")
        assert call is not None and call.disposition == "transferred" and call.transfer_queue == "sales"
        assert [e.kind for e in call.events] == ["dtmf", "transfer_result"]
        assert call.events[0].data == {"digit": "1"}
        assert call.answered_at is not None and call.answered_at.replace(tzinfo=UTC) == T0
        assert [c.id for c in await CallRepository(s).recent()] == ["c1"]


async def test_events_of_unknown_calls_are_refused(engine: AsyncEngine) -> None:
    from sqlalchemy.exc import IntegrityError

    async with sessionmaker(engine)() as s:
        with pytest.raises(IntegrityError):
            await CallRepository(s).add_event("nope", "dtmf", {}, T0)


async def test_jobs_retry_with_backoff_then_fail(engine: AsyncEngine) -> None:
    maker = sessionmaker(engine)
    async with maker() as s, s.begin():
        await JobRepository(s).enqueue("summary", {"call_id": "c1"}, T0, max_attempts=2)
    async with maker() as s, s.begin():
        jobs = JobRepository(s)
        job = await jobs.claim_next("w1", T0)
        assert job is not None and job.attempts == 1 and job.status == "running"
        assert await jobs.claim_next("w2", T0) is None  # taken
        assert await jobs.fail(job, "LLM timeout", T0) == "queued"
    async with maker() as s, s.begin():
        jobs = JobRepository(s)
        assert await jobs.claim_next("w1", T0 + timedelta(seconds=10)) is None  # backing off 30 s
        job = await jobs.claim_next("w1", T0 + timedelta(seconds=31))
        assert job is not None and job.attempts == 2
        assert await jobs.fail(job, "LLM timeout again", T0 + timedelta(seconds=31)) == "failed"
        assert await jobs.claim_next("w1", T0 + timedelta(days=1)) is None


async def test_expired_leases_are_requeued(engine: AsyncEngine) -> None:
    maker = sessionmaker(engine)
    async with maker() as s, s.begin():
        jobs = JobRepository(s)
        await jobs.enqueue("crm", {}, T0)
        assert await jobs.claim_next("dead-worker", T0, lease=timedelta(minutes=1)) is not None
        assert await jobs.requeue_expired(T0 + timedelta(seconds=30)) == 0
        assert await jobs.requeue_expired(T0 + timedelta(minutes=2)) == 1
        job = await jobs.claim_next("w2", T0 + timedelta(minutes=2))
        assert job is not None and job.locked_by == "w2" and job.attempts == 2
        await jobs.complete(job.id)


async def test_a_worker_past_its_lease_cannot_overwrite_the_next_workers_result(engine: AsyncEngine) -> None:
    maker = sessionmaker(engine)  # one session per step, as each worker has its own

    async def step(fn):  # type: ignore[no-untyped-def]
        async with maker() as s, s.begin():
            return await fn(JobRepository(s))

    await step(lambda jobs: jobs.enqueue("crm", {}, T0))
    slow = await step(lambda jobs: jobs.claim_next("slow", T0, lease=timedelta(minutes=1)))
    assert slow is not None
    assert await step(lambda jobs: jobs.requeue_expired(T0 + timedelta(minutes=2))) == 1
    fast = await step(lambda jobs: jobs.claim_next("fast", T0 + timedelta(minutes=2)))
    assert fast is not None and fast.id == slow.id
    # the slow worker wakes up: neither its success nor its failure may touch the job now
    assert not await step(lambda jobs: jobs.complete(slow.id, worker="slow"))
    await step(lambda jobs: jobs.fail(slow, "late failure", T0 + timedelta(minutes=3)))
    job = await step(lambda jobs: jobs.get(fast.id))
    assert job is not None and (job.status, job.locked_by, job.last_error) == ("running", "fast", None)
    assert await step(lambda jobs: jobs.complete(fast.id, worker="fast"))
    done = await step(lambda jobs: jobs.get(fast.id))
    assert done is not None and done.status == "done"


async def test_a_job_that_kills_its_worker_every_time_becomes_a_dead_letter(engine: AsyncEngine) -> None:
    maker = sessionmaker(engine)

    async def step(fn):  # type: ignore[no-untyped-def]
        async with maker() as s, s.begin():
            return await fn(JobRepository(s))

    queued = await step(lambda jobs: jobs.enqueue("crm", {}, T0, max_attempts=2))
    assert queued is not None
    now = T0
    for attempt in (1, 2):
        at = now
        job = await step(
            lambda jobs, at=at, w=f"w{attempt}": jobs.claim_next(w, at, lease=timedelta(minutes=1))
        )
        assert job is not None and job.attempts == attempt
        now += timedelta(minutes=2)  # the worker died with it: the lease runs out
        await step(lambda jobs, at=now: jobs.requeue_expired(at))
    dead = await step(lambda jobs: jobs.get(queued.id))
    assert dead is not None and dead.status == "failed" and "lease expired" in (dead.last_error or "")
    later = now + timedelta(hours=1)
    assert await step(lambda jobs: jobs.claim_next("w3", later)) is None  # it is not run again
    assert await step(lambda jobs: jobs.retry(queued.id, later))  # until someone looks at it and asks
    again = await step(lambda jobs: jobs.claim_next("w3", later))
    assert again is not None and again.attempts == 1


async def test_concurrent_workers_never_claim_the_same_job(engine: AsyncEngine) -> None:
    maker = sessionmaker(engine)
    async with maker() as s, s.begin():
        for i in range(30):
            await JobRepository(s).enqueue("summary", {"n": i}, T0)

    async def worker(name: str) -> list[int]:
        got: list[int] = []
        while True:
            async with maker() as s, s.begin():
                job = await JobRepository(s).claim_next(name, T0 + timedelta(seconds=1))
                if job is None:
                    return got
                got.append(job.id)
                await asyncio.sleep(0)  # let the others race while our transaction is open

    results = await asyncio.gather(*(worker(f"w{i}") for i in range(4)))
    claimed = [j for r in results for j in r]
    assert len(claimed) == len(set(claimed)) == 30
    async with engine.connect() as conn:
        running = (await conn.execute(text("SELECT count(*) FROM jobs WHERE status = 'running'"))).scalar()
    assert running == 30


async def test_outbound_jobs_go_only_to_workers_that_can_dial_and_waiting_uses_no_attempt(
    engine: AsyncEngine,
) -> None:
    maker = sessionmaker(engine)
    async with maker() as s, s.begin():
        jobs = JobRepository(s)
        await jobs.enqueue("outbound", {"number": "+12125550123"}, T0, max_attempts=3, key="callback:c1:book")
        assert await jobs.enqueue("outbound", {}, T0, key="callback:c1:book") is None  # booked once
        await jobs.enqueue("summary", {}, T0 + timedelta(seconds=1))
    async with maker() as s, s.begin():
        jobs = JobRepository(s)
        # A standalone worker (no UA workers) skips the call; a dialling-only worker skips the rest.
        other = await jobs.claim_next("standalone", T0 + timedelta(seconds=2), skip_kinds=("outbound",))
        assert other is not None and other.kind == "summary"
        assert await jobs.claim_next("dial-only", T0 + timedelta(seconds=2), only_kinds=("summary",)) is None
        job = await jobs.claim_next("node", T0 + timedelta(seconds=2), only_kinds=("outbound",))
        assert job is not None and job.kind == "outbound" and job.attempts == 1
        await jobs.defer(job, "trunk carrier is at its limit", T0 + timedelta(seconds=5))
    async with maker() as s, s.begin():
        jobs = JobRepository(s)
        assert await jobs.claim_next("node", T0 + timedelta(seconds=4)) is None
        again = await jobs.claim_next("node", T0 + timedelta(seconds=5), only_kinds=("outbound",))
        assert again is not None and again.attempts == 1  # the wait did not use an attempt
        assert again.last_error == "deferred: trunk carrier is at its limit"
