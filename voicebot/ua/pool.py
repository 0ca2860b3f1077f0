"""A pool of pre-started per-call worker processes, owned by a UA worker (main thread only).

Each worker is a fresh Python process connected by a SOCK_SEQPACKET socketpair; it announces
``WorkerReady`` once it has loaded what it needs. A call takes a ready worker; when the call ends the
worker exits and the pool starts a replacement, so a crash or stall in one call never touches
another, and no call's state leaks into the next.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from voicebot.logs import get_logger

log = get_logger(__name__)
# A worker loads its recogniser (and litellm and a warm TTS when routed plans need them) before it
# says ready: seconds alone, tens of seconds with a UA worker's whole pool loading on two busy cores.
# One that has not said ready by then is stuck: it is killed and another started.
READY_TIMEOUT_S = 60.0
# Workers that die before they are ready (a model path that does not exist, a broken install) would
# otherwise be restarted as fast as they die: back off, doubling up to this, until one gets ready.
MAX_START_BACKOFF_S = 30.0
# A fork server that does not answer a request by then is replaced (the UA worker's loop waits for
# the answer: well under its 3 s heartbeat)
FORK_TIMEOUT_S = 1.0
FORK_WAIT_S = 15.0  # how long the first workers wait for a (re)started fork server, then programs


def start_module(
    module: str, sock: socket.socket, params: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``python -m module --fd N --params FILE`` with ``sock`` as its inherited descriptor N."""
    return subprocess.Popen(
        [sys.executable, "-m", module, "--fd", str(sock.fileno()), "--params", str(params)],
        pass_fds=(sock.fileno(),),
        stdin=subprocess.DEVNULL,
        env={**os.environ, **env} if env else None,
    )


class ForkedProc:
    """A call worker forked by the fork server (not our child): watched through a pidfd, which
    becomes readable when it exits; its exit status goes to the fork server, so it reads as -1."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # already gone
            self._fd, self.returncode = None, -1

    def poll(self) -> int | None:
        if self.returncode is None and self._fd is not None:
            ready, _, _ = select.select([self._fd], [], [], 0)
            if ready:
                self._done()
        return self.returncode

    def _done(self) -> None:
        self.returncode = -1
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and self._fd is not None:
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if not ready:
                raise subprocess.TimeoutExpired(f"call worker {self.pid}", timeout or 0)
            self._done()
        return -1


class ForkServer:
    """The UA worker's end of its fork server (voicebot/callworker/forkserver.py)."""

    def __init__(self, params_file: Path) -> None:
        self.params_file = params_file
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.ready = False  # it said it has imported everything
        self.started_at = 0.0

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # no thread pools in a process that forks (numpy's BLAS would start one per core)
        single = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self.proc = start_module("voicebot.callworker.forkserver", theirs, self.params_file, single)
        theirs.close()
        ours.settimeout(FORK_TIMEOUT_S)
        self.sock = ours
        self.started_at = time.monotonic()
        log.debug("fork_server.started", pid=self.proc.pid)

    def fork(self, child_sock: socket.socket) -> ForkedProc | None:
        """A new call worker on ``child_sock``; None if the fork server is not there (then it is
        restarted on the next call and this worker is started as a program)."""
        if self.proc is None or self.proc.poll() is not None or self.sock is None:
            if self.proc is not None:
                log.warning("fork_server.died", rc=self.proc.returncode)
            self.close()
            self.start()
            return None  # it is still importing: this once, a program
        if not self.is_ready():
            return None  # still importing: never make the UA worker's loop wait for it
        try:
            socket.send_fds(self.sock, [b"fork"], [child_sock.fileno()])
            answer = self.sock.recv(64)
            return ForkedProc(int(answer))
        except (OSError, ValueError) as exc:
            log.warning("fork_server.failed", error=str(exc)[:200])
            self.close()
            return None

    def is_ready(self) -> bool:
        """Whether it has said it imported everything (never blocks)."""
        if not self.ready and self.sock is not None:
            # (the socket has a timeout for fork(): recv would wait for it; select does not)
            if not select.select([self.sock], [], [], 0)[0]:
                return False
            try:
                said = self.sock.recv(64)
                self.ready = said == b"ready"
                if not said:  # it exited before it was ready (see its error above)
                    log.warning("fork_server.died", rc=self.proc.poll() if self.proc else None)
                    self.close()
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                log.warning("fork_server.failed", error=str(exc)[:200])
                self.close()
        return self.ready

    def close(self) -> None:
        self.ready = False
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None and self.proc.poll() is None:
            # SIGKILL: the UA worker's loop must not wait on a server that stopped answering, and
            # the workers it forked live on (they end with their socket, not with the server)
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1)
        self.proc = None


@dataclass
class CallWorkerProc:
    """One per-call worker process and the UA worker's end of its socket."""

    proc: subprocess.Popen[bytes] | ForkedProc
    sock: socket.socket
    started_at: float
    ready: bool = False
    call_id: str | None = None
    closed: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid


class CallWorkerPool:
    """Keeps ``size`` idle workers ready; hands them out to calls; reaps and replaces them."""

    def __init__(
        self,
        size: int,
        params_file: Path,
        max_busy: int,
        spares: int = 0,
        ready_timeout_s: float = READY_TIMEOUT_S,
        fork_server: bool = False,
    ) -> None:
        self.size = size
        self.fork_server = ForkServer(params_file) if fork_server else None
        if self.fork_server is not None:
            self.fork_server.start()
        self.ready_timeout_s = ready_timeout_s
        self.max_busy = max_busy
        self.spares = spares  # kept ready beyond the free call slots, to take over a dead worker's call
        self._params_file = params_file
        self.idle: list[CallWorkerProc] = []
        self.starting: list[CallWorkerProc] = []
        self.busy: dict[str, CallWorkerProc] = {}
        self._retiring: list[tuple[CallWorkerProc, float]] = []
        self.failed_starts = 0  # workers in a row that died or hung before they were ready
        self.next_start = 0.0  # monotonic time before which no worker is started (back-off)
        self.closed = False

    def spawn(self) -> CallWorkerProc:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for s in (parent, child):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        proc: subprocess.Popen[bytes] | ForkedProc | None = None
        if self.fork_server is not None:
            proc = self.fork_server.fork(child)
        if proc is None:
            proc = start_module("voicebot.callworker.main", child, self._params_file)
        child.close()
        parent.setblocking(False)
        worker = CallWorkerProc(proc=proc, sock=parent, started_at=time.monotonic())
        self.starting.append(worker)
        log.debug("call_worker.spawned", pid=proc.pid)
        return worker

    def wanted(self) -> int:
        """How many idle or starting workers fill() keeps: ``size``, but no more than calls can use."""
        return min(self.size, self.max_busy - len(self.busy) + self.spares)

    def fill(self) -> list[CallWorkerProc]:
        """Start workers until ``size`` are idle or starting, never more than calls can still use.

        With the default size (= calls per UA worker) every call finds a ready worker, and a
        replacement is started when a call ends rather than while calls are being set up.
        """
        new: list[CallWorkerProc] = []
        if time.monotonic() < self.next_start:
            return new
        server = self.fork_server
        if (
            server is not None
            and not server.is_ready()
            and server.proc is not None
            and time.monotonic() - server.started_at < FORK_WAIT_S
        ):
            return new  # a moment for it to import, rather than start the first workers as programs
        want = self.wanted()
        while not self.closed and len(self.idle) + len(self.starting) < want:
            new.append(self.spawn())
        return new

    def mark_ready(self, worker: CallWorkerProc) -> None:
        if worker in self.starting:
            self.starting.remove(worker)
            worker.ready = True
            self.idle.append(worker)
            self.failed_starts, self.next_start = 0, 0.0

    def acquire(self, call_id: str) -> CallWorkerProc | None:
        while self.idle:
            worker = self.idle.pop(0)
            if worker.proc.poll() is None:
                worker.call_id = call_id
                self.busy[call_id] = worker
                return worker
            self.discard(worker)
        return None

    def unreserve(self, call_id: str) -> None:
        """A worker taken for a placed call that was never answered: it never heard of the call, so
        it stays warm for the next one (back to idle), unless it died meanwhile."""
        worker = self.busy.pop(call_id, None)
        if worker is None:
            return
        worker.call_id = None
        if worker.closed or worker.proc.poll() is not None:
            self.discard(worker)
        else:
            self.idle.append(worker)

    def release(self, call_id: str) -> None:
        """The call is over: close the worker's socket; it finishes its bookkeeping and exits."""
        worker = self.busy.pop(call_id, None)
        if worker is not None:
            if not worker.closed:
                worker.closed = True
                worker.sock.close()
            self._retiring.append((worker, time.monotonic() + 10.0))

    def discard(self, worker: CallWorkerProc) -> None:
        """Forget a worker that died or broke protocol (any state) and make sure it is gone."""
        for group in (self.idle, self.starting):
            if worker in group:
                group.remove(worker)
        if worker.call_id is not None:
            self.busy.pop(worker.call_id, None)
        if not worker.closed:
            worker.closed = True
            worker.sock.close()
        if worker.proc.poll() is None:
            worker.proc.kill()
        self._retiring.append((worker, time.monotonic() + 5.0))

    def reap(self) -> list[CallWorkerProc]:
        """Collect exited workers; kill retiring ones past their deadline. Returns the idle or
        starting workers it discarded (dead, or not ready in time): their sockets are closed, so the
        caller must stop watching them (a new socket may get the same descriptor number)."""
        now = time.monotonic()
        keep: list[tuple[CallWorkerProc, float]] = []
        for worker, deadline in self._retiring:
            if worker.proc.poll() is not None:
                continue
            if now > deadline:
                log.warning("call_worker.killed", pid=worker.pid, why="did not exit after its call")
                worker.proc.kill()
            keep.append((worker, deadline))
        self._retiring = keep
        dead = [w for w in self.idle + self.starting if w.proc.poll() is not None]
        stuck = [w for w in self.starting if now - w.started_at > self.ready_timeout_s and w not in dead]
        for worker in dead:
            log.warning("call_worker.lost", pid=worker.pid, rc=worker.proc.returncode, why="exited")
        for worker in stuck:
            log.warning(
                "call_worker.lost", pid=worker.pid, why=f"not ready within {self.ready_timeout_s:g} s: killed"
            )
        for worker in dead + stuck:
            self.discard(worker)
        failed = [w for w in dead + stuck if not w.ready]
        if failed:
            self.failed_starts += len(failed)
            delay = min(MAX_START_BACKOFF_S, 0.5 * 2 ** min(self.failed_starts - 1, 10))
            self.next_start = now + delay
            log.error(
                "call_worker.start_failed",
                failed_in_a_row=self.failed_starts,
                retry_in_s=delay,
                why="call workers exit before they are ready: see their error above",
            )
        return dead + stuck

    def close(self, timeout: float = 3.0) -> None:
        """Stop everything: idle/starting workers are closed; wait, then kill stragglers."""
        self.closed = True
        for worker in [*self.idle, *self.starting, *self.busy.values()]:
            if not worker.closed:
                worker.closed = True
                worker.sock.close()
            self._retiring.append((worker, 0.0))
        self.idle.clear()
        self.starting.clear()
        self.busy.clear()
        deadline = time.monotonic() + timeout
        for worker, _ in self._retiring:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                worker.proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                os.kill(worker.pid, signal.SIGKILL)
                worker.proc.wait()
        self._retiring.clear()
        if self.fork_server is not None:
            self.fork_server.close()
