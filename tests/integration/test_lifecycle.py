"""Process lifecycle: SIGTERM drains without leaving a call without a BYE; a killed UA worker comes back."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from support.net import free_port_block, wait_sip
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
    assert "voicebot_ua_worker_restarts_total 1.0" in server.metrics()


def test_readyz_follows_start_capacity_and_drain_while_healthz_stays_up(voicebot, tmp_path: Path) -> None:
    server = voicebot(
        wait=False,
        VOICEBOT_WORKERS__UA_WORKERS="2",
        VOICEBOT_WORKERS__UA_BASE_PORT=str(free_port_block(2)),
        VOICEBOT_WORKERS__DRAIN_TIMEOUT_S="6",
    )
    seen: list[tuple[int, dict]] = []  # type: ignore[type-arg]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen.append(server.probe("readyz"))
        if seen[-1][0] == 200 and seen[-1][1]["ua_workers_ready"] == 2:
            break
        time.sleep(0.05)
    starting = [body for status, body in seen if status == 503]
    assert starting, f"/readyz was never 503 while the workers started: {seen[:3]}"
    assert any("no UA worker is ready" in " ".join(b["why"]) for b in starting), starting[:3]
    status, body = seen[-1]  # ready as soon as one UA worker is; here both are
    assert status == 200 and body["free_slots"] == 8 and body["ua_workers_ready"] == 2, body
    assert server.probe("healthz")[0] == 200
    # A call takes a slot.
    caller = call_bot(tmp_path, server.port, "--duration", "30")
    server.wait_log(r"call\.answered")
    time.sleep(0.3)
    assert server.probe("readyz") == (
        200,
        {"ready": True, "free_slots": 7, "ua_workers_ready": 2, "ua_workers": 2},
    )
    text = server.metrics()
    assert "voicebot_calls_active 1.0" in text and "voicebot_call_slots_free 7.0" in text, text
    idle = re.search(r"^voicebot_call_workers_idle (\S+)", text, re.M)
    assert idle and float(idle.group(1)) >= 1, "pre-started call workers wait for the next calls"
    # Draining: not ready for new calls, still alive, until the process is gone.
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    server.wait_log(r"voicebot\.draining")
    status, body = server.probe("readyz")
    assert status == 503 and "draining" in body["why"], body
    assert server.probe("healthz")[0] == 200
    assert caller.result()["disconnected_by_remote"]
    assert server.proc.wait(timeout=40) == 0
