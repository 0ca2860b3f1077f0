"""The supervisor: warm prompts, start K UA workers (+ the edge when K > 1), restart the dead, drain.

SIGTERM/SIGINT: the edge stops routing new INVITEs (503), every UA worker drains (its calls finish
up to ``workers.drain_timeout_s``, then get a BYE), then the edge stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from voicebot import logs, metrics
from voicebot.callworker.params import CallWorkerParams
from voicebot.callworker.persist import record_lost_calls
from voicebot.callworker.plans import builtin
from voicebot.cluster.member import Membership, backend_uri
from voicebot.cluster.registry import BackendRow
from voicebot.config import Settings
from voicebot.db import migrate
from voicebot.dialplan import shared
from voicebot.dialplan.plan import Plan, parse
from voicebot.dialplan.versions import VersionStore
from voicebot.dialplan.yamlsafe import YamlError
from voicebot.edge.runner import KamailioEdge
from voicebot.engine.engine import ENGINE_TEXTS, plan_prompts, speaks_uncached
from voicebot.errors import ConfigError, EdgeError
from voicebot.ipc.heartbeat import HeartbeatMonitor
from voicebot.jobs.plan import post_call_jobs
from voicebot.jobs.worker import JobWorker
from voicebot.outbound.book import KIND as OUTBOUND
from voicebot.outbound.dialer import Dialer
from voicebot.outbound.spool import Spool as OutboundSpool
from voicebot.records import flusher
from voicebot.records.spool import Spool
from voicebot.signaling.params import UAParams
from voicebot.supervisor import health
from voicebot.supervisor.edge_plan import edge_params
from voicebot.supervisor.infer import InferProcess, LocalLlmProcess
from voicebot.supervisor.plan import call_worker_params, dial_trunks, infer_params, ua_params

if TYPE_CHECKING:
    from voicebot.console.server import ConsoleServer

log = logs.get_logger(__name__)
MAX_DIAL_LANES = 8  # outbound jobs waiting for their answers at once on this node


@dataclass
class UAProcess:
    params: UAParams
    params_file: Path
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    heartbeat: HeartbeatMonitor | None = None
    heartbeat_fd: int | None = None  # our end of the pipe the worker writes its heartbeat to


def write_private(path: Path, text: str) -> None:
    """Write a file only we can read: it may hold trunk passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


class Supervisor:
    """Owns the UA worker processes and the edge; one named task watches each UA worker."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.run_dir = settings.run_dir.resolve()
        self.uas = [UAProcess(p, self.run_dir / f"ua-{p.index}.json") for p in ua_params(settings)]
        self.cw: CallWorkerParams = call_worker_params(settings)  # completed by prepare()
        self.infer: InferProcess | None = None
        if settings.inference.mode == "local":
            self.infer = InferProcess(
                infer_params(settings),
                self.run_dir / "infer.json",
                start_timeout_s=settings.inference.start_timeout_s,
                heartbeat_timeout_s=max(settings.workers.heartbeat_timeout_s, 5.0),
            )
        self.llm_server: LocalLlmProcess | None = None
        if settings.llm.local:
            self.llm_server = LocalLlmProcess(
                settings.llm.local_listen,
                settings.llm.local_threads,
                self.run_dir / "llm-server.log",
                settings.llm.local_parallel,
            )
        self.edge: KamailioEdge | None = None
        self.stopping = asyncio.Event()
        self.finished = asyncio.Event()  # the UA workers are gone: no more records will come
        self.records_task: asyncio.Task[None] | None = None
        self.migrate_pending = False  # the database was away at start: migrate once it is back
        self.tasks: list[asyncio.Task[None]] = []
        self.edge_tasks: set[asyncio.Task[None]] = set()  # backend state changes sent to the edge
        self.loop_tick = time.monotonic()  # the liveness loop's last turn (/healthz)
        self.membership: Membership | None = None  # cluster.role node: our UA workers, for the edge
        self.console: ConsoleServer | None = None  # the admin console (voicebot/console)

    def health(self) -> health.Snapshot:
        """What /healthz and /readyz judge by; called from the HTTP server's thread (reads only)."""
        edge = self.edge
        return health.Snapshot(
            now=time.monotonic(),
            loop_tick=self.loop_tick,
            draining=self.stopping.is_set(),
            edge_required=self.s.uses_edge,
            edge_up=edge is not None and edge.pid is not None and edge.returncode is None,
            infer_required=self.infer is not None,
            infer_ready=self.infer is not None and self.infer.ready,
            uas=[
                health.UAView(
                    alive=ua.proc is not None and ua.proc.returncode is None,
                    ready=hb is not None and hb.ready,
                    free_slots=hb.free_slots if hb is not None else 0,
                )
                for ua in self.uas
                for hb in (ua.heartbeat,)
            ],
        )

    def prepare(self) -> None:
        cw = call_worker_params(self.s)
        if cw.database_url and self.s.database.migrate_on_start:
            try:
                migrate.upgrade(cw.database_url)
                log.info("database.ready")
            except Exception as exc:  # calls are answered without the database; records wait in the spool
                log.error("database.unavailable", error=f"{type(exc).__name__}: {str(exc)[:300]}")
                self.migrate_pending = True
        cw = cw.model_copy(
            update={
                "prompt_dir": self.run_dir / "prompts",
                "warm_tts": any(speaks_uncached(p) for p in self._routed_plans(cw)),
            }
        )
        self.cw = cw
        if cw.asr_backend == "faster-whisper":
            from voicebot.asr.whisper import assemble_model

            assemble_model(cw.model_dir / "whisper-base")  # once, before workers race to do it
        elif cw.asr_backend == "vosk":
            from voicebot.asr.vosk import resolve_model_dir

            resolve_model_dir(cw.vosk_model)  # a wrong path is a startup error, not crashing workers
        for ua in self.uas:
            ua.params = ua.params.model_copy(update={"call_worker": cw, "run_dir": self.run_dir})
            write_private(ua.params_file, ua.params.model_dump_json())
            write_private(
                ua.params_file.with_name(f"call-worker-{ua.params.index}.json"), cw.model_dump_json()
            )

    def warm_prompts(self) -> None:
        """Synthesise every fixed text a call can say into the prompt cache, before calls arrive;
        through the node's speech service when there is one (the supervisor then loads no voice)."""
        t0 = time.monotonic()
        for voice, texts in self._static_prompts(self.cw).items():
            prompts = self.cw.prompts(voice, local=self.infer is None)
            for text in texts:
                prompts.pcm(text)
        log.info("prompts.warmed", ms=round((time.monotonic() - t0) * 1000))

    def _static_prompts(self, cw: CallWorkerParams) -> dict[str | None, list[str]]:
        """Every fixed text a call can say, by voice: the built-in plan's and each routed dialplan's
        (in the dialplan's own voice, when its settings name one)."""
        texts: dict[str | None, list[str]] = {None: [*plan_prompts(builtin(cw)), *ENGINE_TEXTS]}
        for plan in self._routed_plans(cw):
            texts.setdefault(plan.settings.voice, []).extend([*plan_prompts(plan), *ENGINE_TEXTS])
        return texts

    def _routed_plans(self, cw: CallWorkerParams) -> list[Plan]:
        if cw.call_logic != "dialplan":
            return []
        plans = []
        for route in self.s.routes:
            try:
                plans.append(parse(route.dialplan.read_bytes(), str(route.dialplan)))
            except (OSError, YamlError) as exc:
                log.error("dialplan.unusable", dialplan=str(route.dialplan), error=str(exc)[:500])
        return plans

    async def start_ua(self, ua: UAProcess) -> None:
        read_fd, write_fd = os.pipe()
        try:
            ua.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "voicebot.ua.worker",
                "--params",
                str(ua.params_file),
                "--heartbeat-fd",
                str(write_fd),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(write_fd,),
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        ua.started_at = time.monotonic()
        ua.heartbeat = HeartbeatMonitor(
            started_at=ua.started_at,
            timeout_s=self.s.workers.heartbeat_timeout_s,
            start_timeout_s=self.s.workers.start_timeout_s,
        )
        ua.heartbeat_fd = read_fd
        os.set_blocking(read_fd, False)
        asyncio.get_running_loop().add_reader(read_fd, self._on_heartbeat, ua)
        log.info("ua.started", index=ua.params.index, pid=ua.proc.pid, port=ua.params.port)

    def _on_heartbeat(self, ua: UAProcess) -> None:
        if ua.heartbeat_fd is None or ua.heartbeat is None:
            return
        try:
            data = os.read(ua.heartbeat_fd, 512)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the worker closed its end: it exited (watch_ua takes it from here)
            self._close_heartbeat(ua)
            return
        changed = ua.heartbeat.feed(data, time.monotonic())
        if changed is not None:
            log.info("ua.readiness", index=ua.params.index, ready=changed)
            self._tell_edge(ua.params.index, changed)
            if self.membership is not None:
                self.membership.wake.set()

    def _close_heartbeat(self, ua: UAProcess) -> None:
        if ua.heartbeat_fd is not None:
            asyncio.get_running_loop().remove_reader(ua.heartbeat_fd)
            os.close(ua.heartbeat_fd)
            ua.heartbeat_fd = None

    def backend_rows(self) -> list[BackendRow]:
        """This node's UA workers as the shared edge should see them now."""
        rows = []
        for ua in self.uas:
            hb, proc = ua.heartbeat, ua.proc
            alive = proc is not None and proc.returncode is None and hb is not None
            ready = alive and hb is not None and hb.ready
            state = "draining" if self.stopping.is_set() else "ready" if ready else "starting"
            rows.append(
                BackendRow(
                    uri=backend_uri(ua.params.advertise, ua.params.port),
                    node=ua.params.node,
                    ua_index=ua.params.index,
                    max_calls=ua.params.max_calls,
                    free_slots=hb.free_slots if ready and hb is not None else 0,
                    state=state,
                )
            )
        return rows

    def start_membership(self) -> None:
        """cluster.role node: announce our UA workers in the database for the shared edge."""
        url = self.cw.database_url
        if self.s.cluster.role != "node" or not url:
            return
        self.membership = Membership(url, self.s.node_id, self.backend_rows, self.s.cluster.beat_s)
        # until the workers have drained (not self.stopping): the edge must see them draining
        self.tasks.append(asyncio.create_task(self.membership.run(self.finished), name="cluster-membership"))

    def _tell_edge(self, index: int, ready: bool) -> None:
        """Make the edge send INVITEs to a UA worker only while it says it can take calls (its own
        OPTIONS probes agree within a probe interval; this is at once)."""
        if self.edge is not None:
            task = asyncio.create_task(self._set_backend(index, ready), name=f"edge-backend-{index}")
            self.edge_tasks.add(task)
            task.add_done_callback(self.edge_tasks.discard)

    async def _set_backend(self, index: int, ready: bool) -> None:
        assert self.edge is not None
        try:
            await self.edge.set_backend(index, ready)
        except EdgeError as exc:
            log.warning("edge.backend_state_failed", index=index, ready=ready, error=str(exc)[:300])

    async def _end_lost_calls(self, index: int, why: str) -> None:
        """Its callers get a BYE from the edge now, not silence until their PBX times out; the calls
        are recorded as failed with the cause (their call workers died with the UA worker)."""
        if self.edge is None:
            return
        try:
            lost = await self.edge.end_calls_of(index)
        except EdgeError as exc:
            log.warning("edge.end_calls_failed", index=index, error=str(exc)[:300])
            return
        if lost:
            log.error("ua.calls_lost", index=index, calls=len(lost), why=why)
            cw = self.cw
            if cw.database_url:
                await record_lost_calls(cw.database_url, lost, index, why, cw.jobs, cw.spool_dir)

    async def watch_liveness(self) -> None:
        """Kill a UA worker that stopped serving (its loop died or hangs, or it was SIGSTOPped): it is
        alive to the kernel, dead to its callers. watch_ua restarts it."""
        while not self.stopping.is_set():
            now = self.loop_tick = time.monotonic()
            for ua in self.uas:
                hb, proc = ua.heartbeat, ua.proc
                if hb is None or proc is None or proc.returncode is not None or not hb.overdue(now):
                    continue
                log.error(
                    "ua.unresponsive",
                    index=ua.params.index,
                    pid=proc.pid,
                    silent_s=round(hb.silent_for(now), 2),
                    why="no heartbeat: killing it so that it is restarted",
                )
                ua.heartbeat = None  # judged once; the restart brings a new monitor
                self._tell_edge(ua.params.index, False)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await asyncio.sleep(0.25)

    async def watch_ua(self, ua: UAProcess) -> None:
        """Restart the UA worker whenever it exits, unless we are stopping."""
        while True:
            assert ua.proc is not None
            rc = await ua.proc.wait()
            self._close_heartbeat(ua)
            if ua.heartbeat is not None and ua.heartbeat.ready:
                self._tell_edge(ua.params.index, False)
            ua.heartbeat = None
            if self.stopping.is_set():
                log.info("ua.exited", index=ua.params.index, rc=rc)
                return
            ua.restarts += 1
            metrics.ua_restarted()
            log.error("ua.died", index=ua.params.index, rc=rc, restarts=ua.restarts)
            await self._end_lost_calls(ua.params.index, f"UA worker {ua.params.index} died (exit {rc})")
            # Back off when it keeps dying right after start (bad config, port in use).
            if time.monotonic() - ua.started_at < 5.0:
                await asyncio.sleep(min(10.0, self.s.workers.restart_backoff_s * 2 ** min(ua.restarts, 5)))
            if self.stopping.is_set():
                return
            await self.start_ua(ua)

    async def start_llm_server(self) -> bool:
        """llm.local: the bundled model's server, before any call can reach an agent step."""
        assert self.llm_server is not None
        from voicebot.llm.local import LocalLlmMissing

        try:
            started = await self.llm_server.start()
        except LocalLlmMissing as exc:
            log.error("voicebot.cannot_start", why=f"llm.local is set but {exc}")
            return False
        if not started:
            log.error(
                "voicebot.cannot_start",
                why=f"the local LLM server did not start (log: {self.llm_server.log_file})",
            )
            await self.llm_server.stop()
            return False
        self.tasks.append(asyncio.create_task(self.llm_server.watch(self.stopping), name="watch-llm-server"))
        return True

    async def start_edge(self) -> None:
        edge = KamailioEdge(edge_params(self.s, self.run_dir / "edge", [ua.params for ua in self.uas]))
        await edge.start()
        self.edge = edge
        # Every backend starts inactive; those that said "ready" before the edge was up go live now.
        for ua in self.uas:
            if ua.heartbeat is not None and ua.heartbeat.ready:
                self._tell_edge(ua.params.index, True)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        if not await self.start_console():
            return 1
        if self.infer is not None:
            write_private(self.infer.params_file, self.infer.params.model_dump_json())
            # Before the UA workers: a call answered now would have nobody to understand it.
            if not await self.infer.start():
                log.error("voicebot.cannot_start", why="the speech service did not start (see infer.* above)")
                await self.infer.stop()
                return 1
            self.tasks.append(asyncio.create_task(self.infer.watch(self.stopping), name="watch-infer"))
        if self.llm_server is not None and not await self.start_llm_server():
            for task in self.tasks:
                task.cancel()
            if self.infer is not None:
                await self.infer.stop()
            return 1
        if self.migrate_pending:
            self.tasks.append(asyncio.create_task(self.migrate_when_back(), name="database-migrate"))
        self.start_dialplan_sync()
        try:
            await asyncio.to_thread(self.warm_prompts)
        except Exception as exc:  # TtsError: calls still run; each prompt is tried again when said
            log.error("prompts.warm_failed", error=str(exc)[:300])
        for ua in self.uas:
            await self.start_ua(ua)
        self.tasks += [
            asyncio.create_task(self.watch_ua(ua), name=f"watch-ua-{ua.params.index}") for ua in self.uas
        ]
        self.tasks.append(asyncio.create_task(self.watch_liveness(), name="watch-ua-liveness"))
        self.start_records()
        self.start_membership()
        if self.s.uses_edge:
            try:
                await self.start_edge()
            except Exception:
                log.exception("edge.failed")
                self.stopping.set()
        log.info(
            "voicebot.running",
            ua_workers=len(self.uas),
            edge=self.s.uses_edge,
            port=self.s.sip.port,
            role=self.s.cluster.role,
            node=self.s.node_id,
        )
        await self.stopping.wait()
        await self.drain()
        return 0

    async def start_console(self) -> bool:
        """The admin console (console.listen; "" turns it off); False when it cannot listen."""
        if not self.s.console.listen or not self.cw.database_url:
            return True
        from voicebot.console.server import ConsoleServer

        shared_url = self.cw.database_url if self.s.database.share_dialplans else ""
        try:
            self.console = ConsoleServer(self.s, self.cw.database_url, shared_url, self.run_dir, self.health)
            await self.console.start()
        except ConfigError as exc:
            log.error("voicebot.cannot_start", why=str(exc))
            self.console = None
            return False
        return True

    async def migrate_when_back(self) -> None:
        """The database was away at start: bring its schema up to date as soon as it answers, so
        the spooled records, jobs and dialplan sync can use it (one retry loop, 2 s doubling to 60 s)."""
        delay = 2.0
        while not self.finished.is_set():
            try:
                await asyncio.to_thread(migrate.upgrade, self.cw.database_url)
            except Exception as exc:
                log.warning("database.still_unavailable", retry_in_s=delay, error=str(exc)[:200])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.finished.wait(), delay)
                delay = min(60.0, delay * 2)
            else:
                log.info("database.ready", after_outage=True)
                return

    def start_dialplan_sync(self) -> None:
        """This node's copy of the published dialplan versions follows the database (a promote on
        any node reaches this one's next calls within seconds)."""
        url, store = self.cw.database_url, self.cw.dialplan_store
        if url and store is not None and self.s.database.share_dialplans:
            task = shared.sync(url, VersionStore(store), self.finished)
            self.tasks.append(asyncio.create_task(task, name="dialplan-sync"))

    def start_records(self) -> None:
        """The spool flusher (records the database could not take, written when it is back) and,
        when any post-call job is configured and other nodes do not work the queue (jobs.worker:
        false), a job worker."""
        url = self.cw.database_url
        if not url:
            return
        if self.cw.spool_dir is not None:
            spool = Spool(self.cw.spool_dir)
            jobs = self.cw.jobs
            self.records_task = asyncio.create_task(
                flusher.run(spool, url, lambda rec: post_call_jobs(jobs, rec), self.finished),
                name="records-flusher",
            )
        if self.s.jobs.worker and self.s.jobs.active:
            worker = JobWorker(url, self.s.jobs, self.s.llm.resolved())  # no dialer: never outbound jobs
            self.tasks.append(asyncio.create_task(worker.run(self.finished), name="jobs-worker"))
        # Outbound calls need this node's UA workers: only these lanes have the node's dialer, and
        # they run whenever outbound is on, even with jobs.worker false. A lane waits for its call's
        # answer, so there are as many as the trunks may have calls up (the dialer's limits, shared by
        # the lanes, keep each trunk within its own), at most MAX_DIAL_LANES.
        if self.s.outbound.enabled:
            trunks = dial_trunks(self.s)
            dialer = Dialer(self.s.outbound, trunks, OutboundSpool(self.run_dir / "outbound"))
            host = f"{socket.gethostname()}-{os.getpid()}"
            for lane in range(min(MAX_DIAL_LANES, sum(t.max_calls for t in trunks))):
                dialing = JobWorker(
                    url, self.s.jobs, dialer=dialer, only_kinds=(OUTBOUND,), name=f"{host}-dial{lane}"
                )
                self.tasks.append(asyncio.create_task(dialing.run(self.finished), name=f"jobs-dialer-{lane}"))

    async def drain(self) -> None:
        log.info("voicebot.draining", timeout_s=self.s.workers.drain_timeout_s)
        edge = self.edge
        if edge is not None:
            with contextlib.suppress(Exception):
                await edge.set_draining(True)
        if self.membership is not None:  # the shared edge takes our UA workers out within a second
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.membership.beat(), 2.0)
        for ua in self.uas:
            if ua.proc is not None and ua.proc.returncode is None:
                ua.proc.send_signal(signal.SIGTERM)
        grace = self.s.workers.drain_timeout_s + 15.0
        for ua in self.uas:
            if ua.proc is None:
                continue
            try:
                await asyncio.wait_for(ua.proc.wait(), grace)
            except TimeoutError:
                log.error("ua.kill", index=ua.params.index, why="did not drain in time")
                ua.proc.kill()
                await ua.proc.wait()
        self.finished.set()
        if self.records_task is not None:  # records of the last calls: one more try, bounded
            try:
                await asyncio.wait_for(self.records_task, 15.0)
            except Exception as exc:  # a timeout, or the task's own end: the rest must still stop
                log.warning(
                    "records.flush_unfinished", why="kept in the spool for the next start", error=str(exc)
                )
        if self.tasks:  # they watch `finished`: a moment to close their database connections cleanly
            await asyncio.wait(self.tasks, timeout=3.0)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.edge_tasks, return_exceptions=True)
        if self.membership is not None:
            await self.membership.withdraw()
        for ua in self.uas:
            self._close_heartbeat(ua)
        if self.infer is not None:  # after the calls: they may speak until the end
            await self.infer.stop()
        if self.llm_server is not None:
            await self.llm_server.stop()
        if edge is not None:
            await edge.stop()
        if self.console is not None:
            await self.console.stop()
        log.info("voicebot.stopped")


def run_supervisor(settings: Settings) -> int:
    logs.configure(settings.log.level, settings.log.format, settings.log.redact_pii, process="supervisor")
    sup = Supervisor(settings)
    sup.prepare()
    server = None
    if settings.metrics.listen:
        # Before any worker starts: they inherit the directory their metric values go to.
        metrics.use_dir(sup.run_dir / "metrics")
        probes = {
            "healthz": lambda: health.liveness(sup.health()),
            "readyz": lambda: health.readiness(sup.health()),
        }
        server = metrics.serve(settings.metrics.listen, probes)
    try:
        return asyncio.run(sup.run())
    finally:
        if server is not None:
            server.shutdown()
