"""The database side of `voicebot calls` and `voicebot report`: reads only."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import Call, CallEvent
from voicebot.errors import VoicebotError
from voicebot.records.classify import classify
from voicebot.reports.calls import HIDDEN, TEXT_FIELDS, seconds_of
from voicebot.reports.costs import call_cost
from voicebot.reports.summary import CallRow

DURATION = re.compile(r"(\d{1,7})([smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_SPAN = dt.timedelta(days=3660)  # ten years: further back than any record is kept


def span(text: str) -> dt.timedelta:
    """How far back ``--since`` (or the console's since=) looks: ``90s``, ``15m``, ``24h``, ``7d``,
    ``2w``; ValueError, saying what is expected, for anything else."""
    m = DURATION.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text[:40]!r}: a duration such as 15m, 24h or 7d")
    seconds = int(m.group(1)) * UNITS[m.group(2)]
    if seconds > MAX_SPAN.total_seconds():
        raise ValueError(f"{text[:40]!r}: at most ten years back")
    return dt.timedelta(seconds=seconds)


class CallNotFound(VoicebotError):
    pass


def _filtered(
    since: dt.timedelta | None,
    dialplan: str | None,
    outcome: str | None = None,
    failure_class: str | None = None,
) -> Any:
    q = select(Call)
    if since is not None:
        q = q.where(Call.started_at >= dt.datetime.now(dt.UTC) - since)
    if dialplan:
        q = q.where(Call.dialplan.endswith(dialplan, autoescape=True))  # "%" and "_" are literal
    if outcome:
        q = q.where(Call.outcome == outcome)
    if failure_class:
        q = q.where(Call.failure_class == failure_class)
    return q


async def calls(
    session: AsyncSession,
    since: dt.timedelta | None = None,
    dialplan: str | None = None,
    outcome: str | None = None,
    failure_class: str | None = None,
    limit: int = 50,
) -> list[Call]:
    """The newest calls first."""
    q = (
        _filtered(since, dialplan, outcome, failure_class)
        .order_by(Call.started_at.desc(), Call.id)
        .limit(limit)
    )
    found = list((await session.execute(q)).scalars())
    await classify_older(session, found)
    return found


async def events_of(
    session: AsyncSession, ids: list[str], kinds: tuple[str, ...] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The events of these calls (of these kinds), in order, as ``{"kind": ..., **data}`` per call."""
    events: dict[str, list[dict[str, Any]]] = {}
    for start in range(0, len(ids), 500):  # bounded IN lists
        q = select(CallEvent.call_id, CallEvent.kind, CallEvent.data).where(
            CallEvent.call_id.in_(ids[start : start + 500])
        )
        if kinds is not None:
            q = q.where(CallEvent.kind.in_(kinds))
        for call_id, kind, data in (await session.execute(q.order_by(CallEvent.id))).all():
            events.setdefault(call_id, []).append({"kind": kind, **(data or {})})
    return events


async def classify_older(session: AsyncSession, found: list[Call]) -> None:
    """Calls kept before outcomes were stored get theirs from their events (for display only)."""
    older = {c.id: c for c in found if not c.outcome}
    events = await events_of(session, list(older))
    session.expunge_all()  # read-only: nothing set below is written back
    for call_id, call in older.items():
        verdict = classify(events.get(call_id, []))
        call.outcome, call.failure_class = verdict.outcome, verdict.failure_class


async def call_with_events(session: AsyncSession, call_id: str) -> tuple[Call, list[CallEvent]]:
    """A call by its id or an unambiguous start of it, with its events in order."""
    if len(call_id) < 6:
        raise CallNotFound(f"give at least 6 characters of the call id, not {call_id!r}")
    found = list(
        (
            await session.execute(select(Call).where(Call.id.startswith(call_id, autoescape=True)).limit(2))
        ).scalars()
    )
    if not found:
        raise CallNotFound(f"no call {call_id!r}")
    if len(found) > 1:
        raise CallNotFound(f"{call_id!r} is the start of more than one call id: give more of it")
    call = found[0]
    events = (
        await session.execute(select(CallEvent).where(CallEvent.call_id == call.id).order_by(CallEvent.id))
    ).scalars()
    return call, list(events)


async def report_rows(
    session: AsyncSession, since: dt.timedelta, dialplan: str | None = None, prices: Any = None
) -> list[CallRow]:
    """Every call of the window with its turn records and, with ``prices`` (settings ``costs``), its
    cost (one query for the calls, one per 500 calls for the events the report reads)."""
    found = list((await session.execute(_filtered(since, dialplan))).scalars())
    await classify_older(session, found)
    events = await events_of(session, [c.id for c in found], REPORTED)
    rows = []
    for c in found:
        mine = events.get(c.id, [])
        rows.append(
            CallRow(
                dialplan=(c.dialplan or "").rsplit("/", 1)[-1],
                version=c.dialplan_version or "",
                outcome=c.outcome or "",
                failure_class=c.failure_class or "",
                turns=[e for e in mine if e["kind"] == "turn"],
                cost=None if prices is None else call_cost(c.trunk, seconds_of(c), mine, prices),
            )
        )
    return rows


REPORTED = ("turn", "transcript", "tts", "llm_usage", "transfer_result")  # what report rows read


FIELDS = (
    "id",
    "sip_call_id",
    "trunk",
    "caller",
    "callee",
    "dialplan",
    "dialplan_version",
    "node",
    "ua_worker",
    "started_at",
    "ended_at",
    "disposition",
    "transfer_queue",
    "end_reason",
    "outcome",
    "failure_class",
)


def call_doc(call: Call) -> dict[str, Any]:
    return {f: getattr(call, f) for f in FIELDS}


def event_doc(event: CallEvent, transcript: bool, t0: dt.datetime | None) -> dict[str, Any]:
    data = {k: (v if transcript or k not in TEXT_FIELDS else HIDDEN) for k, v in (event.data or {}).items()}
    offset = (event.at - t0).total_seconds() if (event.at and t0) else None
    return {"t": offset, "kind": event.kind, **data}
