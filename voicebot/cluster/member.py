"""A node's side: keep this node's UA workers announced in ``sip_backends`` while it runs.

One named task per node refreshes the rows every ``beat_s`` from what the supervisor knows (each UA
worker's heartbeat: ready or not, free call slots; the node draining). A database that fails is
logged once per outage and tried again every beat (the one retry loop for this dependency); the
edge takes the node out when the refreshes stop, which is right: while it cannot reach the
database it cannot write call records either (they go to the spool). At stop the rows are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from voicebot.cluster import registry
from voicebot.cluster.registry import BackendRow
from voicebot.db.engine import DatabaseParams, create_engine, sessionmaker
from voicebot.edge import kamailio_cfg
from voicebot.edge.params import Backend
from voicebot.logs import get_logger

log = get_logger(__name__)
WITHDRAW_TIMEOUT_S = 5.0
BEAT_TIMEOUT_S = 5.0  # a database that drops packets must not freeze the beat


def backend_uri(host: str, port: int) -> str:
    """``sip:HOST:PORT`` as the edge's dispatcher prints it (the edge's own rendering)."""
    return kamailio_cfg.backend_uri(Backend(host=host, port=port))


class Membership:
    def __init__(self, url: str, node: str, rows: Callable[[], list[BackendRow]], beat_s: float) -> None:
        self.node = node
        self.rows = rows  # this node's UA workers as the supervisor sees them now
        self.beat_s = beat_s
        self.engine = create_engine(DatabaseParams(url=url, pool_size=1))
        self.sessions = sessionmaker(self.engine)
        self.failing = False
        self.wake = asyncio.Event()  # beat now (a UA worker became ready, the node drains)

    async def beat(self) -> bool:
        try:
            async with asyncio.timeout(BEAT_TIMEOUT_S), self.sessions.begin() as session:
                await registry.announce(session, self.rows())
        except Exception as exc:
            if not self.failing:
                log.error("cluster.announce_failed", error=f"{type(exc).__name__}: {str(exc)[:300]}")
            self.failing = True
            return False
        if self.failing:
            log.info("cluster.announce_back")
        self.failing = False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Beat every ``beat_s`` (or at once when woken) until ``stop`` is set."""
        log.info("cluster.joining", node=self.node, beat_s=self.beat_s)
        while not stop.is_set():
            self.wake.clear()  # before the write: a wake-up during it is not lost
            await self.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.beat_s)

    async def withdraw(self) -> None:
        """Remove this node's rows (the edge removes its UA workers), bounded; then close."""
        try:
            async with asyncio.timeout(WITHDRAW_TIMEOUT_S), self.sessions.begin() as session:
                removed = await registry.withdraw(session, self.node, [r.uri for r in self.rows()])
            log.info("cluster.left", node=self.node, backends=removed)
        except Exception as exc:  # the edge forgets them once they go stale
            log.warning("cluster.withdraw_failed", error=f"{type(exc).__name__}: {str(exc)[:300]}")
        finally:
            await self.engine.dispose()
