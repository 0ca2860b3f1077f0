"""The UA worker's heartbeat: a silent child is noticed, readiness changes are reported once."""

from __future__ import annotations

import os

from voicebot.ipc.heartbeat import ALIVE, NOT_READY, READY, HeartbeatMonitor, HeartbeatWriter


def test_a_child_that_never_speaks_gets_its_start_timeout_then_the_short_one() -> None:
    mon = HeartbeatMonitor(started_at=100.0, timeout_s=3.0, start_timeout_s=30.0)
    assert not mon.overdue(120.0)  # still starting: imports, call workers pre-started
    assert mon.overdue(130.5)
    mon.feed(ALIVE, 125.0)
    assert not mon.overdue(127.9)
    assert mon.overdue(128.1)  # once it has spoken, 3 s of silence is too long
    assert mon.silent_for(128.1) == 128.1 - 125.0


def test_readiness_changes_are_reported_once() -> None:
    mon = HeartbeatMonitor(started_at=0.0)
    assert mon.feed(ALIVE * 3, 1.0) is None
    assert mon.feed(ALIVE + READY + ALIVE, 2.0) is True
    assert mon.feed(ALIVE, 3.0) is None and mon.ready
    assert mon.feed(NOT_READY, 4.0) is False
    assert mon.feed(READY + NOT_READY, 5.0) is None  # back where it was: no change to tell
    assert mon.feed(b"", 6.0) is None and mon.last == 5.0


def test_the_writer_throttles_and_survives_a_parent_that_stopped_reading() -> None:
    r, w = os.pipe()
    try:
        writer = HeartbeatWriter(w, interval_s=0.2)
        writer.beat(0.0)
        writer.beat(0.1)  # too soon
        writer.beat(0.25)
        writer.ready(True, 0.3)
        assert os.read(r, 100) == ALIVE + ALIVE + READY
        for i in range(200_000):  # fill the pipe: the writer must neither block nor raise
            writer.beat(1.0 + i)
        os.close(r)
        r = -1
        writer.beat(1e9)  # the parent is gone (EPIPE): the writer goes quiet
        assert writer.fd is None
    finally:
        if r >= 0:
            os.close(r)
        os.close(w)


def test_free_call_slots_are_a_digit_each_time_they_change() -> None:
    r, w = os.pipe()
    try:
        writer = HeartbeatWriter(w)
        writer.free(4, 0.0)
        writer.free(0, 0.1)
        writer.free(12, 0.2)  # 9 means "9 or more"
        data = os.read(r, 100)
    finally:
        os.close(r)
        os.close(w)
    assert data == b"409"
    mon = HeartbeatMonitor(started_at=0.0)
    assert mon.feed(READY + b"4", 1.0) is True and mon.free_slots == 4
    assert mon.feed(b"3" + ALIVE + b"0", 2.0) is None and mon.free_slots == 0  # the newest counts
