"""Call records and post-call jobs on real SQLite and a real PostgreSQL: a record and its jobs are
written at most once, the spool is written in order when the database is back, webhooks are
signed, retried and dead-lettered against a real HTTP endpoint, and redaction and the purge keep
what an admin's retention settings promise."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from support.llm_server import MODEL_NAME
from support.net import free_port
from support.receiver import serve

from voicebot.db.engine import sessionmaker
from voicebot.db.models import Call, CallEvent, Job
from voicebot.db.repository import CallRepository
from voicebot.ipc import proto
from voicebot.jobs import webhook
from voicebot.jobs.plan import post_call_jobs
from voicebot.jobs.settings import JobSettings, WebhookSettings
from voicebot.jobs.worker import JobWorker
from voicebot.llm.client import LlmConfig
from voicebot.records import flusher, record, store
from voicebot.records.spool import Spool

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC)


def a_record(
    call_id: str, started: dt.datetime = NOW, text: str = "I want to pay my bill"
) -> record.CallRecord:
    start = proto.CallStart(
        call_id=call_id,
        sip_call_id=f"sip-{call_id}",
        caller="+4930123",
        callee="100",
        trunk="local",
        dialplan="example",
    )
    events = [
        {"kind": "turn", "t": 0.1, "greeting_ms": 80},
        {"kind": "transcript", "t": 3.0, "text": text, "confidence": 0.9},
        {"kind": "dtmf", "t": 4.0, "digit": "2"},
        {"kind": "transfer_result", "t": 5.0, "ok": True, "queue": "billing"},
        {"kind": "call_ended", "t": 6.0, "reason": "transferred"},
    ]
    return record.build(start, started, events)


async def counts(engine: AsyncEngine, call_id: str) -> tuple[int, int, int]:
    async with sessionmaker(engine)() as s:
        calls = await s.scalar(select(func.count()).select_from(Call).where(Call.id == call_id))
        events = await s.scalar(
            select(func.count()).select_from(CallEvent).where(CallEvent.call_id == call_id)
        )
        jobs = await s.scalar(select(func.count()).select_from(Job).where(Job.key.like(f"%:{call_id}")))
    return int(calls or 0), int(events or 0), int(jobs or 0)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


HOOKS = JobSettings(webhooks=[WebhookSettings(name="crm", url="http://127.0.0.1:9/crm")])


async def test_a_record_and_its_jobs_are_written_once(db_url: str, engine: AsyncEngine) -> None:
    rec = a_record("c1")
    assert await store.save(db_url, rec, post_call_jobs(HOOKS, rec)) is True
    assert (
        await store.save(db_url, rec, post_call_jobs(HOOKS, rec)) is False
    )  # e.g. a flush after a lost reply
    assert await counts(engine, "c1") == (1, 5, 1)


async def test_the_spool_is_written_in_order_exactly_once_when_the_database_is_back(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    for i in range(3):
        spool.put(a_record(f"s{i}"))
    (tmp_path / "spool" / "0-broken.json").write_text("{not json")  # sorts first: must not block the rest
    # A record whose caller is longer than the column (built by hand: build() cuts it): PostgreSQL
    # refuses it, and it must not block the records behind it either.
    spool.put(a_record("long").model_copy(update={"caller": "9" * 300}))
    dead = f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none"
    with pytest.raises(OSError):
        await flusher.flush_once(spool, dead, lambda rec: post_call_jobs(HOOKS, rec))
    assert len(spool.pending()) == 4  # nothing lost while the database is away
    await store.save(db_url, a_record("s1"))  # written before, its reply lost: must not be doubled
    written = await flusher.flush_once(spool, db_url, lambda rec: post_call_jobs(HOOKS, rec))
    assert spool.pending() == []
    assert (tmp_path / "spool" / "bad" / "0-broken.json").exists()
    set_aside = [p.name for p in (tmp_path / "spool" / "bad").glob("*-long.json")]
    assert (written, len(set_aside)) == ((3, 1) if db_url.startswith("postgresql") else (4, 0))
    for i in range(3):
        calls, events, _ = await counts(engine, f"s{i}")
        assert (calls, events) == (1, 5)
    async with sessionmaker(engine)() as s:
        order = list(await s.scalars(select(Call.id).where(Call.id.in_(["s0", "s2"])).order_by(Call.id)))
        jobs = list(await s.scalars(select(Job.key).order_by(Job.id)))
    assert order == ["s0", "s2"] and jobs[:2] == ["webhook:crm:s0", "webhook:crm:s2"]  # in spool order


async def test_webhooks_are_signed_retried_and_dead_lettered(
    db_url: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_SECRET", "s3cret")
    with serve({"crm": [503, 200], "old": [404]}) as receiver:
        cfg = JobSettings(
            poll_s=0.05,
            retry_base_s=0.2,
            webhooks=[
                WebhookSettings(name="crm", url=receiver.url("crm"), secret_env="CRM_SECRET"),
                WebhookSettings(name="old", url=receiver.url("old")),
            ],
        )
        rec = a_record("w1")
        await store.save(db_url, rec, post_call_jobs(cfg, rec))
        stopping = asyncio.Event()
        task = asyncio.create_task(JobWorker(db_url, cfg, name="t").run(stopping), name="jobs-worker")

        async def settled() -> bool:
            async with sessionmaker(engine)() as s:
                return set(await s.scalars(select(Job.status))) <= {"done", "failed"}

        await until(settled)
        stopping.set()
        await task
    crm = receiver.of("crm")
    assert len(crm) == 2  # 503, then delivered
    assert crm[0].headers[webhook.DELIVERY] == crm[1].headers[webhook.DELIVERY] == "webhook:crm:w1"
    assert webhook.verify(b"s3cret", crm[1].headers[webhook.SIGNATURE], crm[1].body)
    assert not webhook.verify(b"wrong", crm[1].headers[webhook.SIGNATURE], crm[1].body)
    doc = json.loads(crm[1].body)
    assert doc["call"]["id"] == "w1" and doc["call"]["disposition"] == "transferred"
    assert [e["kind"] for e in doc["events"]] == ["transcript", "dtmf", "transfer_result"]
    assert len(receiver.of("old")) == 1  # 404: the receiver refused it; retrying would not help
    async with sessionmaker(engine)() as s:
        jobs = {j.key: j for j in await s.scalars(select(Job))}
    assert jobs["webhook:crm:w1"].status == "done" and jobs["webhook:crm:w1"].attempts == 2
    dead = jobs["webhook:old:w1"]
    assert dead.status == "failed" and "HTTP 404" in (dead.last_error or "")

    # The operator's view and the way back from the dead-letter list, through the real CLI.
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "voicebot.cli", "jobs", *args, "--url", db_url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=dict(os.environ))

    listed = cli("list", "--status", "failed")
    assert listed.returncode == 0 and "webhook:old:w1" in listed.stdout and "HTTP 404" in listed.stdout
    assert "webhook:crm:w1" not in listed.stdout
    assert cli("retry", str(dead.id)).returncode == 0
    assert cli("retry", str(jobs["webhook:crm:w1"].id)).returncode == 1  # done, not a dead letter
    shown = json.loads(cli("show", str(dead.id)).stdout)
    assert shown["status"] == "queued" and shown["attempts"] == 0 and shown["payload"]["webhook"] == "old"


async def test_redaction_and_the_purge_keep_the_retention_promise(db_url: str, engine: AsyncEngine) -> None:
    await store.save(db_url, a_record("old", NOW - dt.timedelta(days=40)))
    await store.save(db_url, a_record("aged", NOW - dt.timedelta(days=10)))
    await store.save(db_url, a_record("new", NOW - dt.timedelta(hours=1)))
    cfg = JobSettings(poll_s=0.05, redact_after_days=7, retention_days=30)
    stopping = asyncio.Event()
    task = asyncio.create_task(JobWorker(db_url, cfg, name="t").run(stopping), name="jobs-worker")

    async def maintained() -> bool:
        async with sessionmaker(engine)() as s:
            return (await s.scalar(select(Job.status).where(Job.kind == "maintenance"))) == "done"

    await until(maintained)
    stopping.set()
    await task
    async with sessionmaker(engine)() as s:
        calls = CallRepository(s)
        assert await calls.get("old") is None
        assert (
            await s.scalar(select(func.count()).select_from(CallEvent).where(CallEvent.call_id == "old")) == 0
        )
        aged, new = await calls.get("aged"), await calls.get("new")
    assert aged is not None and new is not None
    assert aged.caller == "<redacted>" and new.caller == "+4930123"
    said = {c.id: [e.data["text"] for e in c.events if e.kind == "transcript"] for c in (aged, new)}
    assert said == {"aged": ["<redacted>"], "new": ["I want to pay my bill"]}


async def test_a_summary_is_written_by_the_real_llm_once(
    db_url: str, engine: AsyncEngine, llm_server: str
) -> None:
    llm = LlmConfig(model=f"openai/{MODEL_NAME}", api_base=llm_server, max_tokens=60, total_timeout_s=60)
    cfg = JobSettings(poll_s=0.05, summary=True)
    rec = a_record("sum1")
    await store.save(db_url, rec, post_call_jobs(cfg, rec))
    worker = JobWorker(db_url, cfg, llm, name="t")
    stopping = asyncio.Event()
    task = asyncio.create_task(worker.run(stopping), name="jobs-worker")

    async def summarised() -> bool:
        async with sessionmaker(engine)() as s:
            return (await s.scalar(select(Job.status).where(Job.key == "summary:sum1"))) in ("done", "failed")

    await until(summarised, timeout=90)
    async with sessionmaker(engine)() as s:
        job = await s.scalar(select(Job).where(Job.key == "summary:sum1"))
        assert job is not None and job.status == "done", job and job.last_error
        # Run again (a worker that died after writing it): the summary is replaced, not doubled.
        job.status, job.attempts = "queued", 0
        await s.commit()
    await until(summarised, timeout=90)
    stopping.set()
    await task
    async with sessionmaker(engine)() as s:
        call = await CallRepository(s).get("sum1")
    assert call is not None
    summaries = [e.data["text"] for e in call.events if e.kind == "summary"]
    assert len(summaries) == 1 and len(summaries[0].split()) >= 3, summaries


async def test_standalone_job_workers_deliver_each_job_once_and_stop_on_sigterm(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """Two `voicebot jobs run` processes (as on two nodes) work one queue: every webhook is delivered
    exactly once, and each process stops cleanly on SIGTERM."""
    import signal

    with serve({"crm": [200] * 10}) as receiver:
        hooks = json.dumps([{"name": "crm", "url": receiver.url("crm")}])
        cfg = JobSettings(webhooks=[WebhookSettings(name="crm", url=receiver.url("crm"))])
        for n in range(6):
            rec = a_record(f"s{n}")
            await store.save(db_url, rec, post_call_jobs(cfg, rec))
        env = {
            **os.environ,
            "VOICEBOT_JOBS__WEBHOOKS": hooks,
            "VOICEBOT_JOBS__POLL_S": "0.1",
            "VOICEBOT_LOG__LEVEL": "info",
        }
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "voicebot.cli", "jobs", "run", "--url", db_url],
                env=env,
                stdout=(tmp_path / f"jobs{i}.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            for i in range(2)
        ]
        try:

            async def settled() -> bool:
                async with sessionmaker(engine)() as s:
                    return set(await s.scalars(select(Job.status))) == {"done"}

            await until(settled, timeout=60)

            # the test is about stopping a working worker: on a loaded machine one may still be
            # importing when the other has done every job (a SIGTERM then kills it before it can
            # install its handler, as for any program)
            async def both_started() -> bool:
                logs = [(tmp_path / f"jobs{i}.log").read_text() for i in range(2)]
                return all("jobs.worker_started" in log for log in logs)

            await until(both_started, timeout=60)
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            codes = [w.wait(timeout=30) for w in workers]
    assert codes == [0, 0], [(tmp_path / f"jobs{i}.log").read_text()[-2000:] for i in range(2)]
    delivered = [r.headers[webhook.DELIVERY] for r in receiver.of("crm")]
    assert sorted(delivered) == sorted(f"webhook:crm:s{n}" for n in range(6))  # each once
