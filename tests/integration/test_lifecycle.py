"""Process lifecycle: SIGTERM drains without leaving a call without a BYE; a killed UA worker comes back."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from support.net import wait_sip
from support.peers import call_bot, sipp

pytestmark = pytest.mark.integration


def test_sigterm_drains_refuses_new_calls_and_byes_the_rest(voicebot, tmp_path: Path) -> None:
    server = voicebot(VOICEBOT_WORKERS__DRAIN_TIMEOUT_S="4")
    callers = [call_bot(tmp_path, server.port, "--duration", "30", name=f"caller{i}") for i in range(2)]
    server.wait_log(r"call\.answered", count=2)
    assert server.proc is not None
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.wait_log(r"ua\.draining")
    refused = sipp("invite_expect_503.xml", f"127.0.0.1:{server.port}", "-m", "1", timeout=10)
    assert refused.returncode == 0, "a draining UA must answer new INVITEs with 503"
    results = [c.result() for c in callers]
    rc = server.proc.wait(timeout=30)
    assert rc == 0
    assert all(r["disconnected_by_remote"] for r in results), "every active call got a BYE from us"
    assert 3.5 < time.monotonic() - t0 < 25
    log = server.log()
    assert "ua.stopped" in log and "ua.exited" in log and "rc=0" in log.split("ua.exited", 1)[1][:200]


def test_killed_ua_worker_is_restarted_and_answers_again(voicebot) -> None:
    server = voicebot()
    (pid,) = server.pids()
    os.kill(pid, signal.SIGKILL)
    server.wait_log(r"ua\.died")
    server.wait_log(r"ua\.ready", count=2, timeout=30)
    wait_sip(server.port)
    res = sipp("uac.xml", f"127.0.0.1:{server.port}", "-m", "2", timeout=30)
    assert res.returncode == 0, res.stdout[-1500:]
    assert len(server.pids()) == 2
