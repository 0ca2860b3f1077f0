"""The call-worker pool backs off when workers die before they are ready (real worker processes)."""

from __future__ import annotations

import time
from pathlib import Path

from voicebot.ua.pool import CallWorkerPool


def test_workers_that_die_before_ready_are_restarted_with_growing_pauses(tmp_path: Path) -> None:
    params = tmp_path / "call-worker.json"
    params.write_text("{not json")  # every worker exits at start, as with a broken model path
    pool = CallWorkerPool(size=1, params_file=params, max_busy=4)
    try:
        (first,) = pool.fill()
        assert first.proc.wait(timeout=30) != 0
        pool.reap()
        assert pool.failed_starts == 1
        assert pool.fill() == []  # not at once: 0.5 s first
        time.sleep(0.6)
        (second,) = pool.fill()
        assert second.proc.wait(timeout=30) != 0
        reaped = time.monotonic()
        pool.reap()
        assert pool.failed_starts == 2
        assert pool.fill() == [] and pool.next_start - reaped >= 1.0  # then 1 s, doubling up to 30 s
        time.sleep(max(0.0, pool.next_start - time.monotonic()) + 0.05)
        assert len(pool.fill()) == 1
    finally:
        pool.closed = True
        for worker in pool.starting + pool.idle:
            pool.discard(worker)


def test_a_worker_stuck_before_ready_is_killed_and_its_socket_can_be_unwatched(tmp_path: Path) -> None:
    import os
    import selectors

    params = tmp_path / "call-worker.json"
    os.mkfifo(params)  # the worker blocks opening its parameters: alive, never ready
    pool = CallWorkerPool(size=1, params_file=params, max_busy=4, ready_timeout_s=0.5)
    selector = selectors.DefaultSelector()
    try:
        (stuck,) = pool.fill()
        selector.register(stuck.sock, selectors.EVENT_READ)
        fd = stuck.sock.fileno()
        time.sleep(0.7)
        assert pool.reap() == [stuck] and stuck.closed
        assert stuck.proc.wait(timeout=10) != 0  # killed
        # What the UA worker does with what reap() returns: the closed socket can still be unwatched,
        # and a new socket on the same descriptor number can then be watched.
        selector.unregister(stuck.sock)
        time.sleep(max(0.0, pool.next_start - time.monotonic()) + 0.05)
        (fresh,) = pool.fill()
        assert fresh.sock.fileno() == fd
        selector.register(fresh.sock, selectors.EVENT_READ)
    finally:
        selector.close()
        pool.closed = True
        for worker in pool.starting + pool.idle:
            pool.discard(worker)


def test_workers_forked_from_the_fork_server_say_ready_and_are_watched(tmp_path: Path) -> None:
    """Real processes: the fork server imports the call worker once; forked workers say ready on
    their socket, share its pages, and their exit is seen through a pidfd."""

    from voicebot.callworker.params import CallWorkerParams
    from voicebot.ipc import proto
    from voicebot.ua.pool import ForkedProc

    params = tmp_path / "call-worker.json"
    params.write_text(CallWorkerParams(asr_backend=None, prompt_dir=tmp_path).model_dump_json())
    pool = CallWorkerPool(size=1, params_file=params, max_busy=4, fork_server=True)
    try:
        server = pool.fork_server
        assert server is not None and server.proc is not None
        deadline = time.monotonic() + 60
        forked = None
        while time.monotonic() < deadline and forked is None:
            worker = pool.spawn()  # programs until the server says it is ready, then forks
            if isinstance(worker.proc, ForkedProc):
                forked = worker
            else:
                pool.discard(worker)
                time.sleep(0.5)
        assert forked is not None, "the fork server never got ready"
        with open(f"/proc/{forked.pid}/stat") as fh:
            assert int(fh.read().rsplit(")", 1)[1].split()[1]) == server.proc.pid  # its child
        forked.sock.settimeout(30)
        assert isinstance(proto.decode(forked.sock.recv(proto.MAX_MESSAGE)), proto.WorkerReady)
        assert forked.proc.poll() is None
        # The fork server replaced (it stopped answering): its workers, maybe mid-call, live on ...
        server.close()
        time.sleep(0.3)
        assert forked.proc.poll() is None
        # ... and a worker ends when its socket to the UA worker closes
        second = pool.spawn()  # the server starting again: this one is a program
        assert not isinstance(second.proc, ForkedProc)
        pool.discard(second)
        forked.sock.close()
        assert forked.proc.wait(timeout=10) == -1 and forked.proc.poll() == -1
    finally:
        pool.close()
    assert pool.fork_server is not None and pool.fork_server.proc is None  # stopped with the pool


def test_a_worker_reserved_for_a_placed_call_never_answered_stays_warm(tmp_path: Path) -> None:
    """Real worker processes: an unanswered outbound call gives its reserved worker back to the idle
    set (it never heard of the call); a worker that died meanwhile is discarded instead."""
    from voicebot.callworker.params import CallWorkerParams

    params = tmp_path / "call-worker.json"
    params.write_text(CallWorkerParams(asr_backend=None, prompt_dir=tmp_path).model_dump_json())
    pool = CallWorkerPool(size=2, params_file=params, max_busy=4)
    try:
        first, second = pool.fill()
        for worker in (first, second):
            pool.mark_ready(worker)
        reserved = pool.acquire("placed-1")
        assert reserved is first and "placed-1" in pool.busy
        pool.unreserve("placed-1")
        assert first in pool.idle and first.call_id is None and "placed-1" not in pool.busy
        assert first.proc.poll() is None, "still running, warm"
        again = pool.acquire("placed-2")
        assert again is second  # the oldest idle first; the returned one waits its turn
        again.proc.kill()
        again.proc.wait(timeout=10)
        pool.unreserve("placed-2")
        assert again not in pool.idle
    finally:
        pool.close()
