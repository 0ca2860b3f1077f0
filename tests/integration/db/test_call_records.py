"""Finished calls are kept in the database, on real SQLite and a real PostgreSQL: a real call through
the example dialplan, its turns and events, and its disposition."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from support.net import free_port
from support.peers import call_bot, queue_peer

from voicebot.db.engine import sessionmaker
from voicebot.db.repository import CallRepository

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


async def test_a_database_that_is_down_costs_a_warning_not_the_call(voicebot, tmp_path: Path) -> None:
    dead = f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none"
    server = voicebot(VOICEBOT_CALL__LOGIC="dialplan", VOICEBOT_DATABASE__URL=dead)
    server.wait_log(r"database\.unavailable")
    caller = call_bot(tmp_path, server.port, "--record", str(tmp_path / "heard.wav"), "--duration", "5")
    assert caller.result(timeout=30)["recording_rms"] > 300  # the call was answered and heard as usual
    server.wait_log(r"call\.not_persisted", timeout=20)
