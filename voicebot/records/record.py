"""What is kept of a finished call, built from its events (pure: no I/O).

A record is plain data that survives a JSON round trip, so that the same object is written to the
database at once or spooled to disk and written later, with the same times and the same content.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from pydantic import BaseModel, Field

from voicebot.ipc import proto
from voicebot.records.classify import classify

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
        # what the failure classes are derived from (voicebot/records/classify.py)
        "plan",
        "step",
        "no_match",
        "early_endpoint",
        "policy_block",
        "retrieval",
        # what a call costs (voicebot/reports/costs.py)
        "tts",
    }
)
PII_FIELDS = ("text",)
REDACTED = "<redacted>"  # also the caller number of a call whose transcripts were redacted


class RecordEvent(BaseModel):
    kind: str
    at: dt.datetime
    data: dict[str, Any] = Field(default_factory=dict)


class CallRecord(BaseModel):
    call_id: str
    sip_call_id: str
    trunk: str
    caller: str = ""
    callee: str = ""
    dialplan: str = ""
    ua_worker: int = 0
    node: str = ""
    started_at: dt.datetime
    answered_at: dt.datetime | None = None
    ended_at: dt.datetime
    disposition: str
    transfer_queue: str | None = None
    end_reason: str = ""
    dialplan_version: str = ""  # "<version>-<content hash>" of the plan the call ran
    outcome: str = ""  # completed, escalated, abandoned, failed (classify.OUTCOMES)
    failure_class: str = ""  # completed or the class of failure (classify.CLASSES)
    events: list[RecordEvent] = Field(default_factory=list)


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


def build(
    start: proto.CallStart,
    started_at: dt.datetime,
    events: list[dict[str, Any]],
    redact_pii: bool = False,
    events_at: dt.datetime | None = None,
) -> CallRecord:
    """The record of a call from its worker's events. Event times are ``events_at`` (default
    ``started_at``) plus each event's offset ``t``: a resumed call's worker started after the call."""
    base = events_at or started_at
    kept = []
    for ev in events:
        if ev["kind"] not in KEPT_EVENTS:
            continue
        data = {k: v for k, v in ev.items() if k not in ("t", "kind")}
        if redact_pii:
            data = {k: (REDACTED if k in PII_FIELDS else v) for k, v in data.items()}
        kept.append(
            RecordEvent(kind=ev["kind"], at=base + dt.timedelta(seconds=float(ev.get("t", 0.0))), data=data)
        )
    kind, queue, reason = disposition(events)
    last = float(events[-1]["t"]) if events else 0.0
    verdict = classify([{"kind": e.kind, **e.data} for e in kept])
    plan = next((e.data for e in kept if e.kind == "plan"), {})
    version = f"{plan['version']}-{str(plan.get('hash', ''))[:12]}" if plan else ""
    return CallRecord(  # cut to the columns' sizes: a 300-character From user must not block the spool
        call_id=start.call_id,
        sip_call_id=start.sip_call_id[:255],
        trunk=start.trunk[:64],
        caller="" if redact_pii else start.caller[:128],
        callee=start.callee[:128],
        dialplan=start.dialplan[:255],
        ua_worker=start.ua_worker,
        node=start.node,
        started_at=started_at,
        answered_at=started_at,
        ended_at=base + dt.timedelta(seconds=last),
        disposition=kind,
        transfer_queue=queue,
        end_reason=reason[:500],
        dialplan_version=version[:64],
        outcome=verdict.outcome,
        failure_class=verdict.failure_class,
        events=kept,
    )


def lost(sip_call_id: str, ua_worker: int, reason: str, now: dt.datetime, node: str = "") -> CallRecord:
    """A call of a UA worker that died: its call worker died with it and kept nothing. The id is
    derived from the SIP Call-ID, so recording the same loss twice writes it once."""
    return CallRecord(
        call_id="lost-" + hashlib.sha256(sip_call_id.encode()).hexdigest()[:27],
        sip_call_id=sip_call_id[:255],
        trunk="",
        ua_worker=ua_worker,
        node=node[:64],
        started_at=now,
        ended_at=now,
        disposition="failed",
        end_reason=reason[:500],
        outcome="failed",
        failure_class="system_failure",
    )
