"""The ``sip_backends`` table: what nodes write about their UA workers and what the edge reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import SipBackend

STATES = ("starting", "ready", "draining")


@dataclass(frozen=True)
class BackendRow:
    """One UA worker as a node announces it."""

    uri: str  # sip:HOST:PORT the edge sends INVITEs to
    node: str
    ua_index: int
    max_calls: int
    free_slots: int
    state: str  # one of STATES
    beat: int = 0  # filled in when read back


async def announce(session: AsyncSession, rows: Sequence[BackendRow]) -> None:
    """Insert or refresh this node's rows; each refresh adds one to ``beat`` (the edge's sign of life)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for row in rows:
        values = {
            "uri": row.uri,
            "node": row.node,
            "ua_index": row.ua_index,
            "max_calls": row.max_calls,
            "free_slots": row.free_slots,
            "state": row.state,
            "beat": 1,
        }
        stmt = insert(SipBackend).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["uri"],
            set_={
                "node": stmt.excluded.node,
                "ua_index": stmt.excluded.ua_index,
                "max_calls": stmt.excluded.max_calls,
                "free_slots": stmt.excluded.free_slots,
                "state": stmt.excluded.state,
                "beat": SipBackend.beat + 1,
                "updated_at": func.now(),
            },
        )
        await session.execute(stmt)


async def withdraw(session: AsyncSession, node: str) -> int:
    """Remove a node's rows (it stops); returns how many there were."""
    result = await session.execute(delete(SipBackend).where(SipBackend.node == node))
    return int(getattr(result, "rowcount", 0) or 0)


async def forget(session: AsyncSession, uris: Sequence[str]) -> None:
    """Remove rows the edge has judged dead for long enough (a node that died never withdraws)."""
    if uris:
        await session.execute(delete(SipBackend).where(SipBackend.uri.in_(list(uris))))


async def listing(session: AsyncSession) -> list[BackendRow]:
    rows = (
        await session.execute(select(SipBackend).order_by(SipBackend.node, SipBackend.ua_index))
    ).scalars()
    return [
        BackendRow(
            uri=r.uri,
            node=r.node,
            ua_index=r.ua_index,
            max_calls=r.max_calls,
            free_slots=r.free_slots,
            state=r.state,
            beat=r.beat,
        )
        for r in rows
    ]
