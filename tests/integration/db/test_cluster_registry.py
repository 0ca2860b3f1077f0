"""The sip_backends table on real SQLite and PostgreSQL: what a node announces is what the edge's
tracker reads; each refresh moves the beat; a node that stops removes exactly its own rows."""

from __future__ import annotations

import asyncio

import pytest

from voicebot.cluster import registry
from voicebot.cluster.member import Membership, backend_uri
from voicebot.cluster.registry import BackendRow
from voicebot.cluster.tracker import Add, BackendTracker, SetActive
from voicebot.db.engine import opened, sessionmaker

pytestmark = pytest.mark.integration


def rows(node: str, host: str, state: str = "ready") -> list[BackendRow]:
    return [
        BackendRow(
            uri=backend_uri(host, 5080 + i), node=node, ua_index=i, max_calls=4, free_slots=4, state=state
        )
        for i in range(2)
    ]


async def read(url: str) -> list[BackendRow]:
    async with opened(url) as engine, sessionmaker(engine)() as session:
        return await registry.listing(session)


def test_two_nodes_announce_refresh_and_leave(db_url: str) -> None:
    async def scenario() -> None:
        state = {"a": "starting"}
        a = Membership(db_url, "a", lambda: rows("a", "10.0.0.1", state["a"]), beat_s=0.1)
        b = Membership(db_url, "b", lambda: rows("b", "fd00::2"), beat_s=0.1)
        assert await a.beat() and await b.beat()
        first = await read(db_url)
        assert [(r.node, r.uri, r.state, r.beat) for r in first] == [
            ("a", "sip:10.0.0.1:5080", "starting", 1),
            ("a", "sip:10.0.0.1:5081", "starting", 1),
            ("b", "sip:[fd00::2]:5080", "ready", 1),
            ("b", "sip:[fd00::2]:5081", "ready", 1),
        ]
        tracker = BackendTracker(stale_after_s=3, forget_after_s=30)
        assert all(isinstance(x, Add) for x in tracker.update(first, now=0.0))
        state["a"] = "ready"
        assert await a.beat() and await b.beat()
        second = await read(db_url)
        assert [r.beat for r in second] == [2, 2, 2, 2] and {r.state for r in second} == {"ready"}
        assert tracker.update(second, now=1.0) == [SetActive(r.uri, True, "ready") for r in second]
        await b.withdraw()  # b stops: its rows go, a's stay
        assert [r.node for r in await read(db_url)] == ["a", "a"]
        async with opened(db_url) as engine, sessionmaker(engine).begin() as session:
            await registry.forget(session, "sip:10.0.0.1:5081", beat=1)  # it has beat 2: kept
        assert len(await read(db_url)) == 2
        async with opened(db_url) as engine, sessionmaker(engine).begin() as session:
            await registry.forget(session, "sip:10.0.0.1:5081", beat=2)
        assert [r.uri for r in await read(db_url)] == ["sip:10.0.0.1:5080"]
        await a.withdraw()
        assert await read(db_url) == []

    asyncio.run(scenario())


def test_a_node_that_cannot_reach_the_database_keeps_trying(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from support.net import free_port

    async def scenario() -> None:
        dead = f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none"
        m = Membership(dead, "a", lambda: rows("a", "10.0.0.1"), beat_s=0.05)
        assert not await m.beat()
        assert m.failing
        stop = asyncio.Event()
        task = asyncio.create_task(m.run(stop))
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, 5)  # the loop survived the failures and stopped when asked
        await m.withdraw()  # bounded, logged, never raises

    asyncio.run(scenario())
