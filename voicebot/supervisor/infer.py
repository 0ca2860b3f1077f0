"""Local services as supervised children: the node's speech service (`voicebot infer`, inference.mode
local) and the local LLM server (llm.local).

Started before the UA workers and waited for (models loaded: /readyz 200), probed every second
(/readyz: loaded and not overloaded; no answer for ``heartbeat_timeout_s``: stalled, e.g. SIGSTOP or a
stuck C extension, and killed), restarted when it exits. While it is down, call workers' requests
fail fast and callers hear the step's reprompt or the espeak fallback; the node reports not ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

import httpx

from voicebot import logs
from voicebot.inference.server import InferParams

log = logs.get_logger(__name__)
PROBE_S = 1.0


async def http_status(client: httpx.AsyncClient, url: str, timeout_s: float) -> int | None:
    """The status code of ``GET url``, or None when nothing answered in time."""
    try:
        return (await client.get(url, timeout=timeout_s)).status_code
    except httpx.HTTPError:
        return None


class ChildService:
    """A local HTTP service the supervisor starts, waits for, probes and restarts (log events are
    ``<name>.started``, ``<name>.ready``, ...)."""

    name = "child"

    def __init__(self, start_timeout_s: float, heartbeat_timeout_s: float) -> None:
        self.start_timeout_s = start_timeout_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = False
        self.restarts = 0
        self.started_at = 0.0
        self._last_answer = 0.0
        self._http: httpx.AsyncClient | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def health_url(self) -> str:
        raise NotImplementedError

    def output(self) -> int | None:
        """Where the child's stdout and stderr go (None: the supervisor's own)."""
        return None

    async def _readyz(self, timeout_s: float) -> int | None:
        if self._http is None:
            self._http = httpx.AsyncClient(trust_env=False)  # our own child: never through a proxy
        return await http_status(self._http, self.health_url(), timeout_s)

    async def start(self) -> bool:
        """Spawn and wait until it is ready; False if it exited or did not load in time."""
        self.ready = False
        out = self.output()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv(), stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
        )
        self.started_at = self._last_answer = time.monotonic()
        log.info(f"{self.name}.started", pid=self.proc.pid, url=self.health_url())
        deadline = self.started_at + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                log.error(f"{self.name}.exited_at_start", rc=self.proc.returncode)
                return False
            if await self._readyz(1.0) == 200:
                self.ready = True
                self._last_answer = time.monotonic()
                log.info(f"{self.name}.ready", ms=round((time.monotonic() - self.started_at) * 1000))
                return True
            await asyncio.sleep(0.2)
        log.error(f"{self.name}.start_timeout", timeout_s=self.start_timeout_s)
        return False

    async def probe(self) -> None:
        """Readiness, and liveness: a service that stopped answering is killed (and restarted)."""
        assert self.proc is not None
        status = await self._readyz(min(2.0, self.heartbeat_timeout_s))
        now = time.monotonic()
        if status is not None:
            self._last_answer = now
        ready = status == 200
        if ready != self.ready:
            log.info(f"{self.name}.readiness", ready=ready, status=status)
            self.ready = ready
        if (
            status is None
            and now - self._last_answer > self.heartbeat_timeout_s
            and self.proc.returncode is None
        ):
            log.error(
                f"{self.name}.unresponsive",
                pid=self.proc.pid,
                silent_s=round(now - self._last_answer, 1),
                why="no answer to its health check: killing it so that it is restarted",
            )
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def watch(self, stopping: asyncio.Event) -> None:
        """Probe while it runs; restart it whenever it exits, unless we are stopping."""
        while not stopping.is_set():
            assert self.proc is not None
            proc = self.proc
            while proc.returncode is None and not stopping.is_set():
                await self.probe()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), PROBE_S)
            if stopping.is_set():
                return
            self.ready = False
            self.restarts += 1
            log.error(f"{self.name}.died", rc=proc.returncode, restarts=self.restarts)
            if time.monotonic() - self.started_at < 5.0:  # dies at once: do not spin
                await asyncio.sleep(min(10.0, 0.5 * 2 ** min(self.restarts, 5)))
            if stopping.is_set():
                return
            if not await self.start():
                log.error(f"{self.name}.restart_failed", restarts=self.restarts)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        self.ready = False


class InferProcess(ChildService):
    """The node's speech service (`python -m voicebot.inference.server`), ready on /readyz."""

    name = "infer"

    def __init__(
        self, params: InferParams, params_file: Path, start_timeout_s: float, heartbeat_timeout_s: float
    ) -> None:
        super().__init__(start_timeout_s, heartbeat_timeout_s)
        self.params = params
        self.params_file = params_file

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "voicebot.inference.server", "--params", str(self.params_file)]

    def health_url(self) -> str:
        host = "127.0.0.1" if self.params.host in ("0.0.0.0", "::", "") else self.params.host
        return f"http://{host}:{self.params.port}/readyz"


class LocalLlmProcess(ChildService):
    """The embedded offline LLM (llm.local): llama-server with the bundled model, on loopback."""

    name = "llm_server"

    def __init__(self, listen: str, threads: int, log_file: Path, parallel: int = 1) -> None:
        # The 98 MB model loads in under a second here; a slow disk gets 60 s.
        super().__init__(start_timeout_s=60.0, heartbeat_timeout_s=30.0)
        self.host, _, port = listen.rpartition(":")
        self.port = int(port)
        self.threads = threads
        self.parallel = parallel
        self.log_file = log_file
        self._log_fd: int | None = None

    def argv(self) -> list[str]:
        from voicebot.llm.local import command

        # each slot keeps a 2048-token conversation; llama.cpp batches the slots' decoding together
        return command(self.host, self.port, self.threads, 2048 * self.parallel, self.parallel)

    def health_url(self) -> str:
        return f"http://{self.host}:{self.port}/health"  # 503 while loading, 200 when serving

    def output(self) -> int | None:
        # llama-server logs every request at length: to its own file, not the node's log
        if self._log_fd is None:
            import os

            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log_fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return self._log_fd
