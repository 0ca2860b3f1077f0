"""Call workers forked from a parent that has already imported them (workers.fork_server).

A call worker started as a program imports ~80 MB of Python modules (pydantic, numpy, SQLAlchemy,
the dialplan's YAML and RE2, httpx...), privately, in every process. The fork server imports them
once, freezes its objects out of the garbage collector's reach (``gc.freeze``: the collector would
otherwise write to every page and undo the sharing), and forks a worker per request: the pages stay
shared copy-on-write, and a worker's own memory is what its call touches (measured: 13 MB private
instead of 94 MB; docs/inference.md).

Protocol on the control socket (SOCK_SEQPACKET, from the UA worker's pool): ``ready`` once the
imports are done (until then the pool starts workers as programs); then each request is one message
carrying the new worker's socket as SCM_RIGHTS, answered with the child's pid as text. The server
has no threads (fork is safe), reaps its children when they exit (the pool watches them through
pidfds), and exits when the UA worker closes the socket or dies (PR_SET_PDEATHSIG). A
child resets its signal dispositions and runs the call worker (voicebot/callworker/main.run); it
ends with its socket to the UA worker, not with the server, which can be replaced mid-call.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import sys
from pathlib import Path

from voicebot import logs
from voicebot.callworker import main as worker_main
from voicebot.callworker.params import CallWorkerParams
from voicebot.procutil import die_with_parent

log = logs.get_logger(__name__)


def preload(params: CallWorkerParams) -> None:
    """Import what a call worker will import, without opening anything (no sockets, no threads)."""
    import sqlalchemy.ext.asyncio  # noqa: F401  (the call record, written at the end)

    from voicebot.callworker import persist, runner  # noqa: F401
    from voicebot.dialplan import plan  # noqa: F401

    if params.asr_providers or params.tts_providers:
        from voicebot.inference import client  # noqa: F401
    # Not litellm: it starts threads when imported, and a process with threads cannot fork safely
    # (forked workers hung). A forked worker imports it itself when an LLM is configured.


def child(fd: int, control: socket.socket, params: CallWorkerParams) -> int:
    control.close()
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    # The imported objects stay frozen: a full collection would touch (and so copy) every page of
    # them; what the call itself allocates is collected as usual. No parent-death signal: the
    # server may be replaced while its workers carry calls; a worker ends when its socket to the
    # UA worker closes (the call is over, or the UA worker is gone).
    return worker_main.run(fd, params)


def _reap(_signum: int, _frame: object) -> None:
    """Collect exited workers (so they leave no zombies, and their CPU time counts as ours, as a
    program's would for its UA worker)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(control: socket.socket, params: CallWorkerParams) -> int:
    preload(params)
    signal.signal(signal.SIGCHLD, _reap)
    gc.collect()
    gc.freeze()
    log.debug("fork_server.ready", pid=os.getpid())
    control.send(b"ready")
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(control, 64, 1)
        except InterruptedError:
            continue
        if not msg and not fds:
            return 0  # the pool closed: the UA worker is stopping
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            control.send(b"error: send one socket")
            continue
        pid = os.fork()
        if pid == 0:
            try:
                rc = child(fds[0], control, params)
            except BaseException:
                log.exception("call_worker.crashed")
                rc = 70
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
        os.close(fds[0])
        control.send(str(pid).encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicebot-call-worker-fork-server")
    parser.add_argument("--fd", type=int, required=True, help="the control socket")
    parser.add_argument("--params", type=Path, required=True)
    args = parser.parse_args(argv)
    die_with_parent(signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    params = CallWorkerParams.model_validate_json(args.params.read_text())
    logs.configure(params.log_level, params.log_format, params.redact_pii, process="call")
    control = socket.socket(fileno=args.fd)
    try:
        return serve(control, params)
    finally:
        control.close()


if __name__ == "__main__":
    sys.exit(main())
