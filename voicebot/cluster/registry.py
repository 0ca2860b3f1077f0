"""The ``sip_backends`` table: what nodes write about their UA workers and what the edge reads."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import SipBackend

STATES = ("starting", "ready", "draining")
# What the edge accepts from the table before any of it reaches Kamailio's RPC: a row is written by
# a node's settings, but the table is shared, so it is checked like input.
# An IP literal only: the edge checks it against cluster.backend_networks (a name could resolve anywhere).
_URI = re.compile(r"^sip:(\[[0-9A-Fa-f:.]{2,45}\]|[0-9]{1,3}(?:\.[0-9]{1,3}){3}):([0-9]{1,5})$")
_NODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


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


def uri_host(uri: str) -> str:
    """The host of ``sip:HOST:PORT`` (without IPv6 brackets)."""
    return uri[4:].rsplit(":", 1)[0].strip("[]")


def problem(row: BackendRow, networks: Sequence[str] = ()) -> str | None:
    """Why the edge must not use ``row`` (None: it may). ``networks``: the CIDRs UA workers may be in."""
    found = _URI.match(row.uri) if len(row.uri) <= 64 else None
    if found is None or not 0 < int(found.group(2)) < 65536:
        return f"uri {row.uri[:80]!r} is not sip:IP:PORT"
    try:
        host = ipaddress.ip_address(uri_host(row.uri))
    except ValueError:
        return f"uri {row.uri[:80]!r} is not sip:IP:PORT"
    if not any(host in ipaddress.ip_network(n, strict=False) for n in networks):
        return f"{host} is outside cluster.backend_networks"
    if not _NODE.match(row.node):
        return f"node {row.node[:80]!r} is not 1-64 letters, digits or ._-"
    if not 1 <= row.max_calls <= 64 or not 0 <= row.ua_index < 1000:
        return f"max_calls {row.max_calls} / ua_index {row.ua_index} out of range"
    if row.state not in STATES:
        return f"state {row.state[:20]!r} is not one of {', '.join(STATES)}"
    return None


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


async def withdraw(session: AsyncSession, node: str, uris: Sequence[str]) -> int:
    """Remove a node's rows (it stops): its own UA workers' only, even if another host were
    misconfigured with the same node id; returns how many there were."""
    result = await session.execute(
        delete(SipBackend).where(SipBackend.node == node, SipBackend.uri.in_(list(uris)))
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def forget(session: AsyncSession, uri: str, beat: int) -> None:
    """Remove a row the edge has judged dead for long enough (a node that died never withdraws),
    unless its node has written it again since (``beat`` moved)."""
    await session.execute(delete(SipBackend).where(SipBackend.uri == uri, SipBackend.beat == beat))


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
