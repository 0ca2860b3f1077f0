"""The job worker: claim a due job, run it, record the outcome; any number of them on any node.

Claiming is one atomic statement (FOR UPDATE SKIP LOCKED on PostgreSQL), so two workers never run
the same job; a worker that dies mid-job loses its lease and the job runs again (every kind is
idempotent: webhooks carry a delivery id, summaries and maintenance overwrite). A failed attempt
is retried with exponential back-off until the job's max_attempts, then kept as a dead letter
(status failed) for `voicebot jobs list --status failed` and `voicebot jobs retry`. The database
being away is one retry loop here, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from voicebot import metrics
from voicebot.db.engine import DatabaseParams, create_engine, sessionmaker
from voicebot.db.models import Job
from voicebot.db.repository import CallRepository, JobRepository
from voicebot.jobs import maintenance, plan, webhook
from voicebot.jobs.settings import JobSettings
from voicebot.jobs.summary import summarise
from voicebot.llm.client import LlmConfig
from voicebot.logs import get_logger
from voicebot.outbound.book import KIND as OUTBOUND
from voicebot.outbound.dialer import Deferred, Dialer, DialFailed

log = get_logger(__name__)


class JobFailed(Exception):
    def __init__(self, message: str, permanent: bool = False, retry_base_s: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_base_s = retry_base_s  # None: jobs.retry_base_s


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class JobWorker:
    def __init__(
        self,
        url: str,
        cfg: JobSettings,
        llm: LlmConfig | None = None,
        name: str = "",
        dialer: Dialer | None = None,
        only_kinds: tuple[str, ...] = (),
    ) -> None:
        self.url = url
        self.cfg = cfg
        self.llm = llm or LlmConfig()
        self.dialer = dialer  # outbound calls: only a worker on a node with UA workers has one
        self.only_kinds = only_kinds  # () = every kind it can run
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.engine: AsyncEngine | None = None
        self._next_sweep = 0.0  # monotonic time of the next look for jobs whose worker died
        self._queued_maintenance = ""  # the maintenance key this worker last queued

    async def run(self, stopping: asyncio.Event) -> None:
        self.engine = create_engine(DatabaseParams(url=self.url, pool_size=2))
        backoff = 0.0
        log.info("jobs.worker_started", worker=self.name, webhooks=[h.name for h in self.cfg.webhooks])
        try:
            while not stopping.is_set():
                try:
                    worked = await self.step()
                    backoff, wait = 0.0, (0.0 if worked else self.cfg.poll_s)
                except Exception as exc:  # the database is away (or a bug): this loop must go on
                    backoff = min(30.0, max(1.0, backoff * 2))
                    wait = backoff
                    known = isinstance(exc, (SQLAlchemyError, OSError, TimeoutError))
                    (log.warning if known else log.exception)(
                        "jobs.db_unavailable" if known else "jobs.worker_error",
                        retry_in_s=backoff,
                        error=f"{type(exc).__name__}: {str(exc)[:200]}",
                    )
                if wait:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), wait)
        finally:
            await self.engine.dispose()

    async def step(self) -> bool:
        """Run at most one job; False when none was due."""
        assert self.engine is not None
        make = sessionmaker(self.engine)
        now = _now()
        sweep = time.monotonic() >= self._next_sweep  # writes only now and then (SQLite: one writer)
        key = ""
        if self.cfg.redact_after_days or self.cfg.retention_days:
            key = plan.maintenance_key(time.time(), self.cfg.maintenance_interval_s)
        async with make() as session, session.begin():
            queue = JobRepository(session)
            if sweep and (back := await queue.requeue_expired(now)):
                log.warning("jobs.lease_expired", requeued=back)
            if key and key != self._queued_maintenance and not self.only_kinds:
                await queue.enqueue(plan.MAINTENANCE, {}, now, 3, key=key)
            skip = () if self.dialer is not None else (OUTBOUND,)
            lease = dt.timedelta(seconds=self.cfg.lease_s)
            job = await queue.claim_next(self.name, now, lease, skip, self.only_kinds)
        if sweep:
            self._next_sweep = time.monotonic() + min(30.0, self.cfg.lease_s / 4)
        if key:
            self._queued_maintenance = key
        if job is None:
            return False
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.cfg.lease_s * 0.8):
                note = await self.handle(job)
        except (JobFailed, webhook.DeliveryFailed) as exc:
            await self._failed(job, str(exc), exc.permanent, getattr(exc, "retry_base_s", None))
        except Deferred as exc:
            async with make() as session, session.begin():
                until = _now() + dt.timedelta(seconds=max(0.5, exc.delay_s))
                await JobRepository(session).defer(job, str(exc), until)
            log.info("jobs.deferred", job=job.id, kind=job.kind, why=str(exc), for_s=round(exc.delay_s, 1))
        except TimeoutError:
            await self._failed(job, f"took longer than {self.cfg.lease_s * 0.8:.0f} s", False)
        except Exception as exc:  # a bug or a dependency's surprise: retried, and it says what
            await self._failed(job, f"{type(exc).__name__}: {str(exc)[:300]}", False)
        else:
            async with make() as session, session.begin():
                if not await JobRepository(session).complete(job.id, self.name):
                    log.warning("jobs.lease_lost", job=job.id, kind=job.kind, why="ran past its lease")
            metrics.job_finished(job.kind, "done")
            log.info(
                "jobs.done",
                job=job.id,
                kind=job.kind,
                attempt=job.attempts,
                ms=round((time.monotonic() - started) * 1000),
                **note,
            )
        return True

    async def _failed(self, job: Job, error: str, permanent: bool, retry_base_s: float | None = None) -> None:
        assert self.engine is not None
        base = dt.timedelta(seconds=self.cfg.retry_base_s if retry_base_s is None else retry_base_s)
        async with sessionmaker(self.engine)() as session, session.begin():
            status = await JobRepository(session).fail(job, error, _now(), base, permanent)
        outcome = "dead" if status == "failed" else "retry"
        metrics.job_finished(job.kind, outcome)
        (log.error if outcome == "dead" else log.warning)(
            "jobs.failed",
            job=job.id,
            kind=job.kind,
            attempt=job.attempts,
            of=job.max_attempts,
            outcome=outcome,
            error=error[:300],
        )

    async def handle(self, job: Job) -> dict[str, object]:
        if job.kind == plan.WEBHOOK:
            return await self._webhook(job)
        if job.kind == plan.SUMMARY:
            return await self._summary(job)
        if job.kind == plan.MAINTENANCE:
            return await self._maintenance()
        if job.kind == OUTBOUND and self.dialer is not None:
            try:
                return await self.dialer.place(job.id, job.attempts, job.payload)
            except DialFailed as exc:
                raise JobFailed(str(exc), exc.permanent, self.dialer.cfg.retry_s) from None
        raise JobFailed(f"no handler for job kind {job.kind!r}", permanent=True)

    async def _call(self, job: Job):  # type: ignore[no-untyped-def]
        assert self.engine is not None
        async with sessionmaker(self.engine)() as session:
            call = await CallRepository(session).get(str(job.payload.get("call_id", "")))
        if call is None:
            raise JobFailed(f"call {job.payload.get('call_id')} is not in the database (purged?)", True)
        return call

    async def _webhook(self, job: Job) -> dict[str, object]:
        name = job.payload.get("webhook")
        hook = next((h for h in self.cfg.webhooks if h.name == name), None)
        if hook is None:
            raise JobFailed(f"webhook {name!r} is not configured (jobs.webhooks)", permanent=True)
        call = await self._call(job)
        status = await webhook.deliver(hook, webhook.body(call), job.key or f"job-{job.id}")
        return {"webhook": hook.name, "status": status}

    async def _summary(self, job: Job) -> dict[str, object]:
        if not self.llm.configured:
            raise JobFailed("no LLM configured (llm.model, llm.api_base)", permanent=True)
        call = await self._call(job)
        text = await summarise(self.llm, call)
        if not text:
            raise JobFailed("the LLM returned no summary")
        assert self.engine is not None
        async with sessionmaker(self.engine)() as session, session.begin():
            calls = CallRepository(session)
            await calls.replace_event(call.id, "summary", {"text": text}, call.ended_at or _now())
        return {"chars": len(text)}

    async def _maintenance(self) -> dict[str, object]:
        assert self.engine is not None
        done: dict[str, object] = {}
        now = _now()
        make = sessionmaker(self.engine)
        # Batches, each its own transaction: a long history is worked through, never rolled back whole.
        if self.cfg.redact_after_days:
            cutoff = now - dt.timedelta(days=self.cfg.redact_after_days)
            done["redacted_calls"] = await _batches(make, lambda s: maintenance.redact_before(s, cutoff))
        if self.cfg.retention_days:
            cutoff = now - dt.timedelta(days=self.cfg.retention_days)
            done["purged_calls"] = await _batches(make, lambda s: maintenance.purge_before(s, cutoff))
        return done


async def _batches(make: Any, batch: Any) -> int:
    total = 0
    while True:
        async with make() as session, session.begin():
            n = int(await batch(session))
        total += n
        if n == 0:
            return total
