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
