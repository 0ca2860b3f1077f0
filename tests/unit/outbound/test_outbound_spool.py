"""The dialer/UA-worker hand-off in run_dir/outbound: claimed once, withdrawn safely, counted."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from voicebot.outbound.spool import Dial, Outcome, Spool


def dial(i: str, trunk: str = "carrier", not_after: float | None = None) -> Dial:
    return Dial(
        id=i,
        number="+12125550123",
        trunk=trunk,
        dialplan="/p.yaml",
        not_after=time.time() + 20 if not_after is None else not_after,
    )


def test_a_request_is_claimed_by_one_worker_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path).ensure()
    spool.submit(dial("a"))
    time.sleep(0.01)
    spool.submit(dial("b"))
    first = spool.claim(os.getpid(), time.time())
    second = Spool(tmp_path).claim(os.getpid(), time.time())  # another UA worker's view
    assert (first and first.id, second and second.id) == ("a", "b")
    assert spool.claim(os.getpid(), time.time()) is None
    assert spool.outcome("a") == Outcome(
        id="a", trunk="carrier", state="claimed", pid=os.getpid(), at=spool.outcome("a").at
    )  # type: ignore[union-attr]


def test_a_withdrawn_request_is_never_dialled_and_a_claimed_one_cannot_be_withdrawn(tmp_path: Path) -> None:
    spool = Spool(tmp_path).ensure()
    spool.submit(dial("a"))
    assert spool.withdraw("a")
    assert spool.claim(os.getpid(), time.time()) is None
    spool.submit(dial("b"))
    assert spool.claim(os.getpid(), time.time()) is not None
    assert not spool.withdraw("b")


def test_an_expired_or_broken_request_is_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path).ensure()
    spool.submit(dial("old", not_after=time.time() - 1))
    (spool.queue / "junk.json").write_text("{not json")
    assert spool.claim(os.getpid(), time.time()) is None
    gone = spool.outcome("old")
    assert gone is not None and (gone.state, gone.reason) == ("failed", "expired")


def test_live_calls_count_per_trunk_only_while_their_worker_lives(tmp_path: Path) -> None:
    spool = Spool(tmp_path).ensure()
    spool.submit(dial("q", trunk="carrier"))
    spool.report(Outcome(id="up", trunk="carrier", state="answered", pid=os.getpid()))
    spool.report(Outcome(id="other", trunk="backup", state="ringing", pid=os.getpid()))
    spool.report(Outcome(id="done", trunk="carrier", state="ended", pid=os.getpid()))
    dead = subprocess.Popen(["true"])
    dead.wait()
    spool.report(Outcome(id="orphan", trunk="carrier", state="answered", pid=dead.pid))
    assert spool.live("carrier", time.time()) == 2  # queued + answered; the dead worker's call is gone
    assert spool.live("backup", time.time()) == 1
    spool.live("carrier", time.time() + 3600)  # old finished outcomes are cleared on the way
    assert spool.outcome("done") is None
