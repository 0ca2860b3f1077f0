"""Liveness and readiness of a child process over a pipe.

The child (a UA worker) writes one byte now and then from the loop that serves calls: ``ALIVE`` at
most every ``interval_s``, ``READY`` once it can take calls, ``NOT_READY`` when it stops taking
them (draining), and a digit whenever its number of free call slots changes (9 means 9 or more).
The parent (the supervisor) feeds what it reads into a :class:`HeartbeatMonitor` (sans-I/O: time is
an argument) and asks it whether the child has gone quiet. A process whose loop
died or hangs, or that was SIGSTOPped, stops writing: waiting for it to exit is not enough to know
that it serves calls (a pjsua2 process whose Python loop died stays alive on pjsua2's threads).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ALIVE = b"."
READY = b"R"
NOT_READY = b"N"


class HeartbeatWriter:
    """The child's end: never blocks and never raises (a parent that stopped reading must not stall
    or kill the loop that serves calls; it will notice the silence itself)."""

    def __init__(self, fd: int | None, interval_s: float = 0.2) -> None:
        self.fd = fd
        self.interval_s = interval_s
        self._next = 0.0
        if fd is not None:
            os.set_blocking(fd, False)

    def beat(self, now: float) -> None:
        """Say "alive" if ``interval_s`` has passed since the last byte."""
        if now >= self._next:
            self._write(ALIVE, now)

    def ready(self, ready: bool, now: float) -> None:
        """Say whether calls can be taken now (also counts as a beat)."""
        self._write(READY if ready else NOT_READY, now)

    def free(self, slots: int, now: float) -> None:
        """Say how many more calls it can take now (also counts as a beat)."""
        self._write(str(max(0, min(9, slots))).encode(), now)

    def _write(self, byte: bytes, now: float) -> None:
        self._next = now + self.interval_s
        if self.fd is None:
            return
        try:
            os.write(self.fd, byte)
        except BlockingIOError:
            pass  # the pipe is full: the parent is not reading, and will judge by the bytes it has
        except OSError:
            self.fd = None  # the parent is gone (EPIPE); nothing to tell any more


@dataclass
class HeartbeatMonitor:
    """The parent's view of one child process, from the bytes it wrote and when they arrived.

    Before the first byte the child may take ``start_timeout_s`` (imports, loading, pre-starting its
    call workers); after it, any silence longer than ``timeout_s`` means the child no longer serves.
    """

    started_at: float
    timeout_s: float = 3.0
    start_timeout_s: float = 60.0
    last: float | None = None
    ready: bool = False
    free_slots: int = 0

    def feed(self, data: bytes, now: float) -> bool | None:
        """Take what was read from the pipe; return the new readiness if it changed, else None."""
        if not data:
            return None
        self.last = now
        was = self.ready
        for byte in data:
            if byte == READY[0]:
                self.ready = True
            elif byte == NOT_READY[0]:
                self.ready = False
            elif 0x30 <= byte <= 0x39:
                self.free_slots = byte - 0x30
        return self.ready if self.ready != was else None

    def silent_for(self, now: float) -> float:
        """Seconds since the last byte (or since the start, before the first one)."""
        return now - (self.last if self.last is not None else self.started_at)

    def overdue(self, now: float) -> bool:
        """True once the child has been silent for longer than it may be."""
        limit = self.timeout_s if self.last is not None else self.start_timeout_s
        return self.silent_for(now) > limit
