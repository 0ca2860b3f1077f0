"""Finished calls are kept in the database, on real SQLite and a real PostgreSQL: a real call through
the example dialplan, its turns and events, and its disposition."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pg_server import PostgresServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from support.net import free_port
from support.peers import call_bot, queue_peer
from support.receiver import serve

from voicebot.db.engine import DatabaseParams, create_engine, sessionmaker
from voicebot.db.models import Job
from voicebot.db.repository import CallRepository
from voicebot.jobs import webhook

pytestmark = pytest.mark.integration


async def test_a_transferred_call_is_kept_with_its_events(
    voicebot, db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    queue_port = free_port()
    queues = {"sales": f"sip:sales@127.0.0.1:{queue_port}", "support": f"sip:support@127.0.0.1:{queue_port}"}
    server = voicebot(
        VOICEBOT_CALL__LOGIC="dialplan",
        VOICEBOT_QUEUES=json.dumps(queues),
        VOICEBOT_DATABASE__URL=db_url,
        VOICEBOT_LOG__REDACT_PII="true",
    )
    queue = queue_peer(tmp_path, queue_port, "--hold", "1", "--duration", "30", "--max-calls", "1")
    caller = call_bot(tmp_path, server.port, "--dtmf", "2@1.5", "--duration", "20")
    assert caller.result(timeout=60)["transferred_code"] == 200
    queue.result(timeout=60)
    (rec,) = server.records(expect=1)
    server.wait_log(r"call\.worker_done", timeout=15)
    async with sessionmaker(engine)() as session:
        call = await CallRepository(session).get(rec["call"]["call_id"])
    assert call is not None and call.disposition == "transferred" and call.transfer_queue == "support"
    assert call.caller == ""  # redact_pii: the caller's number is not kept
    assert call.ended_at is not None and call.started_at is not None and call.ended_at >= call.started_at
    kinds = [e.kind for e in call.events]
    assert {"dtmf", "transfer_request", "transfer_result", "call_ended"} <= set(kinds)
    assert any(e.kind == "turn" and e.data.get("greeting_ms") is not None for e in call.events)


async def test_postgresql_stopped_mid_call_loses_nothing_and_doubles_nothing(
    voicebot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away during a call: the call goes on, its record waits in the spool, and
    when PostgreSQL is back the record, its events and its webhook arrive exactly once."""
    pg = PostgresServer().start()
    try:
        url = pg.create_database("outage")
        monkeypatch.setenv("CRM_SECRET", "k")
        with serve() as crm:
            hooks = [{"name": "crm", "url": crm.url("crm"), "secret_env": "CRM_SECRET"}]
            server = voicebot(
                VOICEBOT_CALL__LOGIC="dialplan",
                VOICEBOT_DATABASE__URL=url,
                VOICEBOT_JOBS__WEBHOOKS=json.dumps(hooks),
                VOICEBOT_JOBS__POLL_S="0.2",
                CRM_SECRET="k",
            )
            server.wait_log(r"database\.ready")
            caller = call_bot(
                tmp_path, server.port, "--record", str(tmp_path / "heard.wav"), "--duration", "6"
            )
            server.wait_log(r"call\.started")
            pg.halt()  # mid-call
            assert caller.result(timeout=30)["recording_rms"] > 300  # answered and heard as usual
            (line,) = server.wait_log(r"call\.spooled", timeout=30)
            call_id = re.search(r"call_id=(\w+)", line).group(1)  # type: ignore[union-attr]
            assert len(list((server.workdir / "run" / "spool").glob("*.json"))) == 1
            pg.resume()
            server.wait_log(r"records\.unspooled", timeout=60)
            server.wait_log(r"jobs\.done.*webhook", timeout=60)
            assert list((server.workdir / "run" / "spool").glob("*.json")) == []
            engine = create_engine(DatabaseParams(url=url))
            try:
                async with sessionmaker(engine)() as session:
                    call = await CallRepository(session).get(call_id)
                    assert call is not None and call.ended_at is not None
                    kinds = [e.kind for e in call.events]
                    assert kinds.count("call_ended") == 1 and kinds.count("turn") >= 1
                    (job,) = list(await session.scalars(select(Job)))
                    assert job.key == f"webhook:crm:{call_id}" and job.status == "done"
            finally:
                await engine.dispose()
            (got,) = crm.of("crm")  # delivered once
            assert json.loads(got.body)["call"]["id"] == call_id
            assert webhook.verify(b"k", got.headers[webhook.SIGNATURE], got.body)
    finally:
        pg.stop()


async def test_a_database_away_at_start_is_migrated_and_filled_when_it_is_back(
    voicebot, tmp_path: Path
) -> None:
    """The node starts while PostgreSQL is down (a fresh database, no schema yet): calls are answered,
    records wait in the spool, and once PostgreSQL answers the schema is migrated and they are written."""
    pg = PostgresServer().start()
    try:
        url = pg.create_database("late")
        pg.halt()
        server = voicebot(VOICEBOT_CALL__LOGIC="dialplan", VOICEBOT_DATABASE__URL=url)
        server.wait_log(r"database\.unavailable")
        caller = call_bot(tmp_path, server.port, "--duration", "4")
        caller.result(timeout=30)
        (line,) = server.wait_log(r"call\.spooled", timeout=30)
        call_id = re.search(r"call_id=(\w+)", line).group(1)  # type: ignore[union-attr]
        pg.resume()
        server.wait_log(r"database\.ready.*after_outage", timeout=90)
        server.wait_log(r"records\.unspooled", timeout=90)
        engine = create_engine(DatabaseParams(url=url))
        try:
            async with sessionmaker(engine)() as session:
                call = await CallRepository(session).get(call_id)
                assert call is not None and [e.kind for e in call.events].count("call_ended") == 1
        finally:
            await engine.dispose()
    finally:
        pg.stop()
