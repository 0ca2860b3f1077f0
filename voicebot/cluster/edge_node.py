"""``voicebot edge``: the Kamailio edge alone (its own host, or in front of several nodes), with
backends from the database.

Nodes with ``cluster.role: node`` announce their UA workers in ``sip_backends``; every
``cluster.sync_s`` this process reads the table, and the :class:`BackendTracker` turns it into
dispatcher changes (``dispatcher.add``/``remove``/``set_state`` over Kamailio's RPC). The database
failing changes nothing at the edge: the backends it knows keep taking calls (and Kamailio's own
OPTIONS probes still take a dead one out) until the table can be read again.

SIGTERM: new INVITEs get 503 (trunks go elsewhere), the calls already set up go on, since their
in-dialog requests pass through here, until they end or ``workers.drain_timeout_s``; then
Kamailio stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from typing import Any

from voicebot import logs, metrics
from voicebot.callworker.persist import record_lost_calls
from voicebot.cluster import registry
from voicebot.cluster.tracker import Action, Add, BackendTracker, EndCalls, Forget, Remove, SetActive
from voicebot.config import Settings
from voicebot.db.engine import DatabaseParams, create_engine, sessionmaker
from voicebot.edge.runner import KamailioEdge
from voicebot.errors import ConfigError, EdgeError
from voicebot.supervisor.edge_plan import edge_params

log = logs.get_logger(__name__)


class EdgeNode:
    def __init__(self, settings: Settings) -> None:
        if not settings.database.url:
            raise ConfigError("voicebot edge needs database.url: the nodes announce their UA workers there")
        self.s = settings
        self.run_dir = settings.run_dir.resolve()
        self.edge = KamailioEdge(edge_params(settings, self.run_dir / "edge", [], dynamic=True))
        c = settings.cluster
        self.tracker = BackendTracker(c.stale_after_s, c.forget_after_s)
        self.engine = create_engine(DatabaseParams(url=settings.database.url, pool_size=1))
        self.sessions = sessionmaker(self.engine)
        self.stopping = asyncio.Event()
        self.db_failing = False
        self.synced = False  # the table has been read at least once
        self.loop_tick = time.monotonic()

    # --- /healthz, /readyz (called from the HTTP server's thread: reads only) -----------------------
    def liveness(self) -> tuple[int, dict[str, Any]]:
        stalled = time.monotonic() - self.loop_tick
        up = self.edge.pid is not None and self.edge.returncode is None
        if stalled > 5.0 or not up:
            why = (
                [f"the sync loop has not run for {stalled:.1f} s"]
                if stalled > 5.0
                else ["kamailio is not running"]
            )
            return 503, {"alive": False, "why": why}
        return 200, {"alive": True}

    def readiness(self) -> tuple[int, dict[str, Any]]:
        live = self.tracker.live()
        why = []
        if self.stopping.is_set():
            why.append("draining")
        if self.edge.pid is None or self.edge.returncode is not None:
            why.append("kamailio is not running")
        if not live:
            why.append("no UA worker of any node is ready")
        body: dict[str, Any] = {
            "ready": not why,
            "backends_live": len(live),
            "backends": len(self.tracker.seen),
        }
        if self.db_failing:
            body["database"] = "unreachable: serving the backends known before"
        if why:
            body["why"] = why
        return (503 if why else 200), body

    # --- the sync loop ------------------------------------------------------------------------------
    async def sync_once(self) -> None:
        try:
            async with self.sessions() as session:
                rows = await registry.listing(session)
        except Exception as exc:
            if not self.db_failing:
                log.error("edge.database_unavailable", error=f"{type(exc).__name__}: {str(exc)[:300]}")
            self.db_failing = True
            return
        if self.db_failing:
            log.info("edge.database_back")
        self.db_failing = False
        try:
            observed = {uri: flags.startswith("A") for uri, flags in (await self._states()).items()}
        except EdgeError as exc:
            log.warning("edge.states_unreadable", error=str(exc)[:200])
            observed = None
        for action in self.tracker.update(rows, time.monotonic(), observed):
            await self.apply(action)
        self.synced = True

    async def _states(self) -> dict[str, str]:
        try:
            return await self.edge.backend_states()
        except EdgeError as exc:
            if "No Destination Sets" in str(exc):  # no node has announced anything yet
                return {}
            raise

    async def apply(self, action: Action) -> None:
        try:
            if isinstance(action, Add):
                await self.edge.add_backend(action.uri, action.duid, action.max_calls)
            elif isinstance(action, Remove):
                await self.edge.remove_backend(action.uri)
            elif isinstance(action, SetActive):
                await self.edge.set_backend_uri(action.uri, action.active, action.why)
            elif isinstance(action, EndCalls):
                ended = await self.edge.end_calls_of_uri(action.uri)
                if ended:
                    log.error("edge.calls_lost", backend=action.uri, calls=len(ended), why=action.why)
                    await self.record_lost(action, ended)
            elif isinstance(action, Forget):
                async with self.sessions.begin() as session:
                    await registry.forget(session, [action.uri])
                log.info("edge.backend_forgotten", backend=action.uri)
        except Exception as exc:  # one backend's trouble must not stop the others being followed
            log.warning(
                "edge.action_failed", action=repr(action), error=f"{type(exc).__name__}: {str(exc)[:300]}"
            )

    async def record_lost(self, action: EndCalls, sip_call_ids: list[str]) -> None:
        """The calls died with their node, which kept nothing: record each as failed, with the cause
        (once: the record id comes from the SIP Call-ID)."""
        seen = self.tracker.seen.get(action.uri)
        node, index = (seen.row.node, seen.row.ua_index) if seen is not None else ("", 0)
        why = f"{action.why}: ended by the edge"
        await record_lost_calls(self.s.database.url, sip_call_ids, index, why, self.s.jobs, None, node)

    async def sync(self) -> None:
        period = self.s.cluster.sync_s
        while not self.stopping.is_set():
            self.loop_tick = time.monotonic()
            await self.sync_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), period)

    # --- run / drain ----------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        try:
            await self.edge.start()
        except EdgeError as exc:
            log.error("edge.cannot_start", error=str(exc)[:2000])
            await self.engine.dispose()
            return 1
        await self.sync_once()  # the backends announced already, before the first trunk call
        sync = asyncio.create_task(self.sync(), name="edge-sync")
        watch = asyncio.create_task(self.edge.wait(), name="edge-kamailio")
        log.info("edge.running", port=self.s.sip.port, backends=len(self.tracker.seen))
        stop = asyncio.create_task(self.stopping.wait(), name="edge-stop")
        done, _ = await asyncio.wait({watch, stop}, return_when=asyncio.FIRST_COMPLETED)
        rc = 0
        if watch in done:
            log.error("edge.kamailio_exited", rc=watch.result())
            rc = 1
            self.stopping.set()
        else:
            await self.drain()
        stop.cancel()
        await asyncio.gather(sync, stop, return_exceptions=True)
        await self.edge.stop()
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        await self.engine.dispose()
        log.info("edge.stopped")
        return rc

    async def drain(self) -> None:
        """New INVITEs 503; wait for the calls that pass through here to end (bounded)."""
        timeout = self.s.workers.drain_timeout_s
        with contextlib.suppress(EdgeError):
            await self.edge.set_draining(True)
        deadline = time.monotonic() + timeout
        log.info("edge.draining", timeout_s=timeout)
        while time.monotonic() < deadline:
            calls = await self.active_calls()
            if calls == 0:
                return
            await asyncio.sleep(0.5)
        log.warning("edge.drain_timeout", calls=await self.active_calls())

    async def active_calls(self) -> int | None:
        try:
            out = await self.edge.rpc("dlg.stats_active")
        except EdgeError:
            return None
        found = re.search(r"all:\s*(\d+)", out)
        return int(found.group(1)) if found else None


def run_edge(settings: Settings) -> int:
    logs.configure(settings.log.level, settings.log.format, settings.log.redact_pii, process="edge")
    node = EdgeNode(settings)
    server = None
    if settings.metrics.listen:
        metrics.use_dir(node.run_dir / "metrics")
        server = metrics.serve(settings.metrics.listen, {"healthz": node.liveness, "readyz": node.readiness})
    try:
        return asyncio.run(node.run())
    finally:
        if server is not None:
            server.shutdown()
