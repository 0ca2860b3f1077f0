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
from voicebot.db import migrate
from voicebot.db.engine import DatabaseParams, create_engine, sessionmaker
from voicebot.edge.runner import KamailioEdge
from voicebot.errors import ConfigError, EdgeError
from voicebot.jobs.plan import post_call_jobs
from voicebot.records import flusher
from voicebot.records.spool import Spool
from voicebot.supervisor.edge_plan import edge_params

log = logs.get_logger(__name__)
DB_TIMEOUT_S = 5.0  # one read or write of the table; a database that drops packets must not stall the loop


class EdgeNode:
    def __init__(self, settings: Settings) -> None:
        if not settings.cluster.backend_networks:
            raise ConfigError(
                "voicebot edge needs cluster.backend_networks: the networks the nodes' UA workers are in "
                "(VOICEBOT_CLUSTER__BACKEND_NETWORKS='[\"10.0.0.0/24\"]'); rows elsewhere are refused"
            )
        if settings.database.url.startswith("sqlite"):
            log.warning(
                "edge.sqlite_database",
                why="nodes on other hosts cannot share a SQLite file: use PostgreSQL (database.url)",
            )
        self.s = settings
        self.run_dir = settings.run_dir.resolve()
        self.edge = KamailioEdge(edge_params(settings, self.run_dir / "edge", [], dynamic=True))
        c = settings.cluster
        self.tracker = BackendTracker(
            c.stale_after_s,
            c.forget_after_s,
            # a silent node's UA worker must also fail the probes (one interval and its 1 s timeout)
            end_grace_s=settings.edge.probe_interval_s + 1.0 + c.sync_s,
            outage_s=max(2 * c.sync_s, 1.5),
        )
        self.engine = create_engine(DatabaseParams(url=settings.database.url, pool_size=1))
        self.sessions = sessionmaker(self.engine)
        self.stopping = asyncio.Event()
        self.db_failing = False
        self.refused: set[str] = set()  # rows already reported as unusable
        self.loop_tick: float | None = None  # the sync loop's last turn; None until it runs

    # --- /healthz, /readyz (called from the HTTP server's thread: reads only) -----------------------
    def liveness(self) -> tuple[int, dict[str, Any]]:
        tick = self.loop_tick
        if tick is None:  # starting: Kamailio's config check and start come first
            return 200, {"alive": True, "starting": True}
        stalled = time.monotonic() - tick
        limit = max(5.0, 3 * self.s.cluster.sync_s)
        why = []
        if stalled > limit:
            why.append(f"the sync loop has not run for {stalled:.1f} s")
        if self.edge.pid is None or self.edge.returncode is not None:
            why.append("kamailio is not running")
        return (503, {"alive": False, "why": why}) if why else (200, {"alive": True})

    def readiness(self) -> tuple[int, dict[str, Any]]:
        live = self.tracker.live()
        why = []
        if self.stopping.is_set():
            why.append("draining")
        if self.edge.pid is None or self.edge.returncode is not None:
            why.append("kamailio is not running")
        if not live:
            why.append("no UA worker of any node is ready")
        free = sum(s.row.free_slots for s in list(self.tracker.seen.values()) if s.live)
        body: dict[str, Any] = {
            "ready": not why,
            "backends_live": len(live),
            "backends": len(self.tracker.seen),
            "free_slots": free,  # as the nodes last said
        }
        if self.db_failing:
            body["database"] = "unreachable: serving the backends known before"
        if why:
            body["why"] = why
        return (503 if why else 200), body

    # --- the sync loop ------------------------------------------------------------------------------
    async def sync_once(self) -> None:
        try:
            async with asyncio.timeout(DB_TIMEOUT_S), self.sessions() as session:
                rows = await registry.listing(session)
        except Exception as exc:
            if not self.db_failing:
                log.error("edge.database_unavailable", error=f"{type(exc).__name__}: {str(exc)[:300]}")
            self.db_failing = True
            return
        if self.db_failing:
            log.info("edge.database_back")
        self.db_failing = False
        usable = []
        for row in rows:
            why = registry.problem(row, self.s.cluster.backend_networks)
            if why is None:
                usable.append(row)
            elif row.uri not in self.refused:
                self.refused.add(row.uri)  # once per row, not every sync
                log.error("edge.backend_refused", node=row.node[:64], why=why)
        rows = usable
        try:
            observed = {uri: flags.startswith("A") for uri, flags in (await self._states()).items()}
        except EdgeError as exc:
            log.warning("edge.states_unreadable", error=str(exc)[:200])
            observed = None
        for action in self.tracker.update(rows, time.monotonic(), observed):
            await self.apply(action)

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
                async with asyncio.timeout(DB_TIMEOUT_S), self.sessions.begin() as session:
                    await registry.forget(session, action.uri, action.beat)
                log.info("edge.backend_forgotten", backend=action.uri)
        except Exception as exc:  # one backend's trouble must not stop the others being followed
            log.warning(
                "edge.action_failed", action=repr(action), error=f"{type(exc).__name__}: {str(exc)[:300]}"
            )

    async def record_lost(self, action: EndCalls, sip_call_ids: list[str]) -> None:
        """The calls died with their node, which kept nothing: record each as failed, with the cause
        (once: the record id comes from the SIP Call-ID)."""
        why = f"{action.why}: ended by the edge"
        url, jobs, spool = self.s.database.url, self.s.jobs, self.run_dir / "spool"
        await record_lost_calls(url, sip_call_ids, action.ua_index, why, jobs, spool, action.node)

    async def sync(self) -> None:
        period = self.s.cluster.sync_s
        while not self.stopping.is_set():
            self.loop_tick = time.monotonic()
            try:
                await self.sync_once()
            except Exception:  # the loop must outlive any one sync: it is what keeps calls routed
                log.exception("edge.sync_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), period)

    # --- run / drain ----------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        if self.s.database.migrate_on_start:
            try:
                await asyncio.to_thread(migrate.upgrade, self.s.database.url)
            except Exception as exc:  # the sync loop retries reading; a node may migrate it meanwhile
                log.error("database.unavailable", error=f"{type(exc).__name__}: {str(exc)[:300]}")
        try:
            await self.edge.start()
        except EdgeError as exc:
            log.error("edge.cannot_start", error=str(exc)[:2000])
            await self.engine.dispose()
            return 1
        sync = asyncio.create_task(self.sync(), name="edge-sync")
        # lost calls the database could not take when they were ended wait in the spool
        jobs = self.s.jobs
        flush = asyncio.create_task(
            flusher.run(
                Spool(self.run_dir / "spool"),
                self.s.database.url,
                lambda rec: post_call_jobs(jobs, rec),
                self.stopping,
            ),
            name="records-flusher",
        )
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
        sync.cancel()
        await asyncio.gather(sync, stop, return_exceptions=True)
        try:  # its last pass, bounded
            await asyncio.wait_for(flush, 10.0)
        except Exception as exc:
            log.warning(
                "records.flush_unfinished", why="kept in the spool for the next start", error=str(exc)
            )
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
