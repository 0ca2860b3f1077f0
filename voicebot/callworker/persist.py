"""Keep a finished call in the database: the call row, its turns and its key events.

Runs in the call worker after the call is over (never on the live path), bounded in time: a database
that is down or slow costs a warning in the log, never the worker. Transcripts of sensitive input are
already redacted in the events; ``redact_pii`` also drops the caller's number and every transcript.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from typing import Any

from voicebot.db.engine import DatabaseParams, create_engine, sessionmaker
from voicebot.db.repository import CallRepository
from voicebot.ipc import proto
from voicebot.logs import get_logger

log = get_logger(__name__)
KEPT_EVENTS = frozenset(
    {
        "turn",
        "transcript",
        "dtmf",
        "transfer_request",
        "transfer_result",
        "hangup_request",
        "tool_result",
        "agent_reply",
        "llm_failed",
        "tts_failed",
        "asr_failed",
        "recording",
        "no_input",
        "resumed",
        "resume_gave_up",
        "tool_interrupted",
        "asr_unrecognized",
        "barge_in",
        "call_ended",
    }
)
PII_FIELDS = ("text",)
TIMEOUT_S = 10.0


def disposition(events: list[dict[str, Any]]) -> tuple[str, str | None, str]:
    """(disposition, transfer queue, end reason) from a call's events."""
    ended = next((e.get("reason", "") for e in reversed(events) if e["kind"] == "call_ended"), "")
    done = [e for e in events if e["kind"] == "transfer_result" and e.get("ok")]
    if done:
        return "transferred", done[-1]["queue"], ended
    if any(e["kind"] == "hangup_request" for e in events):
        return "bot_hung_up", None, ended
    if ended.startswith("remote"):
        return "caller_hung_up", None, ended
    return "ended", None, ended or "worker ended"


async def save_call(
    url: str,
    start: proto.CallStart,
    started_at: dt.datetime,
    events: list[dict[str, Any]],
    redact_pii: bool = False,
    events_at: dt.datetime | None = None,
) -> bool:
    """Write the call and its kept events (times: ``events_at`` (default ``started_at``) + each
    event's offset ``t``; a resumed call's worker started after the call did)."""
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await _save(url, start, started_at, events, redact_pii, events_at or started_at)
        return True
    except Exception as exc:  # the database is not the call's business: log and go on
        log.warning("call.not_persisted", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        return False


async def _save(
    url: str,
    start: proto.CallStart,
    started_at: dt.datetime,
    events: list[dict[str, Any]],
    redact_pii: bool,
    events_at: dt.datetime,
) -> None:
    engine = create_engine(DatabaseParams(url=url, pool_size=1))
    try:
        async with sessionmaker(engine)() as session, session.begin():
            calls = CallRepository(session)
            await calls.create(
                start.call_id,
                start.sip_call_id,
                start.trunk,
                caller="" if redact_pii else start.caller,
                callee=start.callee,
                dialplan=start.dialplan,
                ua_worker=start.ua_worker,
                started_at=started_at,
                answered_at=started_at,
            )
            for ev in events:
                if ev["kind"] not in KEPT_EVENTS:
                    continue
                data = {k: v for k, v in ev.items() if k not in ("t", "kind")}
                if redact_pii:
                    data = {k: ("<redacted>" if k in PII_FIELDS else v) for k, v in data.items()}
                at = events_at + dt.timedelta(seconds=float(ev.get("t", 0.0)))
                await calls.add_event(start.call_id, ev["kind"], data, at)
            kind, queue, reason = disposition(events)
            last = float(events[-1]["t"]) if events else 0.0
            await calls.ended(
                start.call_id, events_at + dt.timedelta(seconds=last), kind, reason[:500], queue
            )
    finally:
        await engine.dispose()


async def record_lost_calls(url: str, sip_call_ids: list[str], ua_worker: int, reason: str) -> bool:
    """Calls of a UA worker that died: their workers died with it and kept nothing, so the supervisor
    records each (by its SIP Call-ID) as failed, with the cause. Bounded like save_call."""
    try:
        async with asyncio.timeout(TIMEOUT_S):
            engine = create_engine(DatabaseParams(url=url, pool_size=1))
            try:
                async with sessionmaker(engine)() as session, session.begin():
                    calls = CallRepository(session)
                    now = dt.datetime.now(dt.UTC)
                    for sip_call_id in sip_call_ids:
                        call_id = "lost-" + hashlib.sha256(sip_call_id.encode()).hexdigest()[:27]
                        await calls.create(call_id, sip_call_id, "", ua_worker=ua_worker, started_at=now)
                        await calls.ended(call_id, now, "failed", reason[:500])
            finally:
                await engine.dispose()
        return True
    except Exception as exc:
        log.warning("call.not_persisted", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        return False
