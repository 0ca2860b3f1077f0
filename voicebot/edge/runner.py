"""Run Kamailio as the SIP edge: write and check its config, start it in the foreground, drain, stop.

Kamailio runs as the current user with its config, pid file, control socket and log in
``params.run_dir``; it never daemonizes (-DD), so this object owns the process and its exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import time
from pathlib import Path

from voicebot.edge import sip_probe
from voicebot.edge.kamailio_cfg import backend_uri, render_config, render_dispatcher_list, render_uacreg
from voicebot.edge.params import EdgeParams, validate
from voicebot.errors import EdgeError
from voicebot.logs import get_logger

log = get_logger(__name__)

_PR_SET_PDEATHSIG = 1
_CHECK_TIMEOUT_S = 15.0
_KAMCMD_TIMEOUT_S = 5.0
_LOG_TAIL_BYTES = 2000


# Resolved in the parent: between fork and exec the child must not dlopen (other threads may hold
# the loader's lock at fork time).
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGTERM Kamailio if the supervisor dies, so no orphan keeps the SIP port."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class KamailioEdge:
    """One Kamailio process in front of the UA workers."""

    def __init__(self, params: EdgeParams) -> None:
        validate(params)
        self.params = params
        self._proc: asyncio.subprocess.Process | None = None
        self._draining = False

    @property
    def pid(self) -> int | None:
        """The main Kamailio process id, once started."""
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        """Kamailio's exit code, or None while it runs (or before start)."""
        return self._proc.returncode if self._proc else None

    @property
    def draining(self) -> bool:
        """Whether new INVITEs are currently answered 503."""
        return self._draining

    async def start(self) -> None:
        """Write and check the config, start Kamailio, return once it answers OPTIONS.

        Raises EdgeError (with the tail of Kamailio's log) if the config is rejected, the process
        exits, or it does not answer within ``params.start_timeout_s``.
        """
        p = self.params
        if self._proc is not None and self._proc.returncode is None:
            raise EdgeError("edge already running")
        self._write_files()
        await self._check_config()
        started = time.monotonic()
        log.info("edge.starting", port=p.port, transports=",".join(p.transports), backends=len(p.backends))
        with p.log_path.open("ab") as logfile:
            self._proc = await asyncio.create_subprocess_exec(
                *self._command(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=logfile,
                cwd=p.run_dir,
                start_new_session=True,  # the terminal's Ctrl-C must not kill it before we drain
                preexec_fn=_die_with_parent,
            )
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop(timeout=2.0)
            raise
        log.info("edge.ready", pid=self._proc.pid, elapsed_ms=round((time.monotonic() - started) * 1000))

    async def set_draining(self, on: bool) -> None:
        """Answer new INVITEs 503 + Retry-After while ``on``; in-dialog requests keep flowing."""
        value = "1" if on else "0"
        await self._kamcmd("pv.shvSet", "draining", "int", value)
        # Read it back: the supervisor's SIGTERM path must not believe in a drain that did not happen.
        if not re.search(rf"value:\s*{value}\b", await self._kamcmd("pv.shvGet", "draining")):
            raise EdgeError(f"edge draining flag did not change to {value}")
        self._draining = on
        log.info("edge.draining", on=on)

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM Kamailio, then SIGKILL its whole process group if it has not exited in ``timeout``."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log.warning("edge.stop_timeout", pid=proc.pid, timeout_s=timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        # Children normally exit with the main process; make sure none outlives it holding the port.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        log.info("edge.stopped", pid=proc.pid, returncode=proc.returncode)

    async def set_backend(self, index: int, active: bool) -> None:
        """Mark UA worker ``index`` active or inactive in the dispatcher at once (probing stays on:
        an inactive worker that answers OPTIONS again comes back by itself)."""
        await self.set_backend_uri(backend_uri(self.params.backends[index]), active)

    async def set_backend_uri(self, uri: str, active: bool, why: str = "") -> None:
        await self._kamcmd("dispatcher.set_state", "ap" if active else "ip", "1", uri)
        log.info("edge.backend_state", backend=uri, active=active, why=why or None)

    async def add_backend(self, uri: str, duid: str, max_calls: int) -> None:
        """A UA worker of another node joins, inactive until it is marked active (dispatcher.add keeps
        the other backends' states and call loads)."""
        await self._kamcmd("dispatcher.add", "1", uri, "1", "0", f"duid={duid};maxload={max_calls}")
        log.info("edge.backend_added", backend=uri, duid=duid, max_calls=max_calls)

    async def remove_backend(self, uri: str) -> None:
        await self._kamcmd("dispatcher.remove", "1", uri)
        log.info("edge.backend_removed", backend=uri)

    async def end_calls_of(self, index: int) -> list[str]:
        """BYE both sides of every call the edge routed to UA worker ``index`` (it died: its callers
        must not wait in silence for their PBX to time out). Returns the calls' SIP Call-IDs."""
        return await self.end_calls_of_uri(backend_uri(self.params.backends[index]))

    async def end_calls_of_uri(self, uri: str) -> list[str]:
        """BYE both sides of every call the edge routed to the backend ``uri``."""
        listing = await self._kamcmd("dlg.profile_list", "ua", uri)
        ended: list[str] = []
        for block in re.split(r"\n(?=\{)", listing):
            entry = re.search(r"h_entry:\s*(\d+)", block)
            ident = re.search(r"h_id:\s*(\d+)", block)
            call_id = re.search(r"call-id:\s*(\S+)", block)
            if entry is None or ident is None:
                continue
            try:
                await self._kamcmd("dlg.end_dlg", entry.group(1), ident.group(1))
            except EdgeError as exc:  # it may have ended meanwhile
                log.warning("edge.end_dialog_failed", error=str(exc)[:200])
                continue
            ended.append(call_id.group(1) if call_id else "")
        log.info("edge.calls_ended", backend=uri, calls=len(ended))
        return ended

    async def backend_states(self) -> dict[str, str]:
        """Dispatcher state per backend URI, e.g. {"sip:127.0.0.1:5071": "AP"} (A active, I inactive,
        T trying, D disabled; P probed)."""
        out = await self._kamcmd("dispatcher.list")
        return dict(re.findall(r"URI:\s*(\S+)\s+FLAGS:\s*(\S+)", out))

    async def rpc(self, *args: str) -> str:
        """One Kamailio RPC (kamcmd); EdgeError when it fails."""
        return await self._kamcmd(*args)

    async def wait(self) -> int:
        """Wait for Kamailio to exit and return its exit code (for the supervisor's watcher task)."""
        if self._proc is None:
            raise EdgeError("edge not started")
        return await self._proc.wait()

    def _command(self) -> list[str]:
        p = self.params
        return [
            p.kamailio_bin,
            "-f", str(p.config_path),
            "-DD",  # no daemon: we own the process, its exit code and its signals
            "-E",  # log to stderr (our log file), not syslog
            "-m", str(p.shm_mb),
            "-M", str(p.pkg_mb),
            "-P", str(p.pid_path),
            "-Y", str(p.run_dir),
            "-w", str(p.run_dir),
            "-L", p.modules_dir,
        ]  # fmt: skip

    def _write_files(self) -> None:
        p = self.params
        if "tls" in p.transports and not Path(p.modules_dir, "tls.so").exists():
            raise EdgeError(
                f"edge transport tls needs Kamailio's tls module ({p.modules_dir}/tls.so): "
                "install the Debian package kamailio-tls-modules"
            )
        p.run_dir.mkdir(parents=True, exist_ok=True)
        # A socket left by a killed Kamailio would make the ctl module fail to bind.
        p.ctl_socket.unlink(missing_ok=True)
        p.config_path.write_text(render_config(p))
        p.dispatcher_list_path.write_text(render_dispatcher_list(p))
        if p.registrations:  # trunk passwords: readable by this user only
            p.uacreg_dir.mkdir(mode=0o700, exist_ok=True)
            p.uacreg_dir.chmod(0o700)
            for name, text in render_uacreg(p).items():
                path = p.uacreg_dir / name
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(text)

    async def _check_config(self) -> None:
        p = self.params
        cmd = [p.kamailio_bin, "-c", "-f", str(p.config_path), "-m", str(p.shm_mb), "-M", str(p.pkg_mb)]
        rc, out = await _run([*cmd, "-Y", str(p.run_dir), "-L", p.modules_dir], _CHECK_TIMEOUT_S)
        if rc != 0:
            raise EdgeError(f"kamailio rejected {p.config_path} (exit {rc}):\n{out[-_LOG_TAIL_BYTES:]}")

    async def _wait_ready(self) -> None:
        p = self.params
        assert self._proc is not None
        deadline = time.monotonic() + p.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                raise EdgeError(f"kamailio exited with {self._proc.returncode} at start:\n{self._log_tail()}")
            status = await sip_probe.options_ping(p.local_host, p.port, timeout=0.3, local_host=p.local_host)
            if status in (200, 503):  # 503: up, but no UA worker is ready yet (or it drains)
                return
            await asyncio.sleep(0.1)
        raise EdgeError(f"kamailio did not answer OPTIONS within {p.start_timeout_s} s:\n{self._log_tail()}")

    async def _kamcmd(self, *args: str) -> str:
        p = self.params
        rc, out = await _run([p.kamcmd_bin, "-s", f"unix:{p.ctl_socket}", *args], _KAMCMD_TIMEOUT_S)
        # kamcmd exits 0 when the RPC itself fails ("error: 404 - Variable not found").
        if rc != 0 or out.lstrip().startswith("error"):
            raise EdgeError(f"kamcmd {' '.join(args)} failed (exit {rc}): {out.strip()[:500]}")
        return out

    def _log_tail(self) -> str:
        try:
            data = self.params.log_path.read_bytes()
        except OSError:
            return "(no log)"
        return data[-_LOG_TAIL_BYTES:].decode("utf-8", "replace")


async def _run(cmd: list[str], timeout: float) -> tuple[int, str]:
    """Run a short command; (exit code, stdout+stderr). A hung command is killed after ``timeout``."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"{cmd[0]} timed out after {timeout} s"
    return proc.returncode if proc.returncode is not None else -1, out.decode("utf-8", "replace")
