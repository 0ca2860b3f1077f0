"""`voicebot run` with three UA workers behind the Kamailio edge, driven by real sipp/pjsua2 peers."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
from support.net import free_port_block
from support.peers import call_bot, sipp

pytestmark = pytest.mark.integration


def _cluster(voicebot, workers: int = 3, **extra: str):  # type: ignore[no-untyped-def]
    server = voicebot(
        VOICEBOT_WORKERS__UA_WORKERS=str(workers),
        VOICEBOT_WORKERS__UA_BASE_PORT=str(free_port_block(workers)),
        VOICEBOT_EDGE__PROBE_INTERVAL_S="1",
        **extra,
    )
    # The supervisor tells the edge as soon as each UA worker is ready: no probe interval to wait.
    server.wait_log(r"edge\.backend_state.*active=True", count=workers)
    return server


def _why(server, sipp_out: str) -> str:  # type: ignore[no-untyped-def]
    """What the supervisor and the edge said, for a failure that only shows under load."""
    lines = [
        ln
        for ln in server.log().splitlines()
        if re.search(r"edge\.|ua\.(died|ready|readiness)|call\.rej", ln)
    ]
    edge_log = next(iter(sorted(server.workdir.glob("run/edge/kamailio.log"))), None)
    tail = edge_log.read_text(errors="replace")[-3000:] if edge_log else "(no edge log)"
    return "\n".join([sipp_out[-1500:], *lines[-40:], "--- kamailio ---", tail])


def test_ten_concurrent_calls_spread_over_three_workers(voicebot) -> None:
    server = _cluster(voicebot)
    res = sipp(
        "uac_rr.xml", f"127.0.0.1:{server.port}", "-m", "10", "-l", "10", "-r", "20", "-d", "3000", timeout=60
    )
    assert res.returncode == 0, _why(server, res.stdout)
    records = server.records(expect=10)
    per_worker = collections.Counter(r["call"]["ua_worker"] for r in records)
    assert sum(per_worker.values()) == 10
    assert set(per_worker) == {0, 1, 2}, per_worker
    assert max(per_worker.values()) <= 4  # nobody got more than a pjsua2 worker can hold


def test_killing_a_ua_worker_fails_over_and_it_is_restarted(voicebot) -> None:
    server = _cluster(voicebot)
    victim = server.pids()[0]
    os.kill(victim, signal.SIGKILL)
    # Calls placed right away still succeed: the edge fails over on timeout/5xx to a live worker.
    res = sipp(
        "uac_rr.xml", f"127.0.0.1:{server.port}", "-m", "6", "-l", "6", "-r", "10", "-d", "500", timeout=60
    )
    assert res.returncode == 0, _why(server, res.stdout)
    server.wait_log(r"ua\.died")
    server.wait_log(r"ua\.ready", count=4, timeout=40)
    died = [line for line in server.log().splitlines() if "ua.died" in line or "Fatal Python" in line]
    assert len(server.pids()) == 4, died  # only the victim was restarted


def test_drain_through_the_edge_refuses_new_calls_and_byes_active_ones(voicebot, tmp_path: Path) -> None:
    server = _cluster(voicebot, VOICEBOT_WORKERS__DRAIN_TIMEOUT_S="4")
    caller = call_bot(
        tmp_path,
        server.port,
        "--duration",
        "30",
    )
    server.wait_log(r"call\.answered")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    server.wait_log(r"voicebot\.draining")
    time.sleep(0.5)
    refused = sipp("invite_expect_503.xml", f"127.0.0.1:{server.port}", "-m", "1", timeout=10)
    assert refused.returncode == 0, "the edge must answer new INVITEs with 503 while draining"
    assert caller.result()["disconnected_by_remote"]
    assert server.proc.wait(timeout=40) == 0


def test_trunk_is_chosen_by_the_callers_address_not_the_edges(voicebot) -> None:
    import json

    trunks = [{"name": "pbx-a", "allow": ["127.0.0.1/32"]}, {"name": "pbx-b", "allow": ["127.0.0.2/32"]}]
    server = _cluster(voicebot, VOICEBOT_TRUNKS=json.dumps(trunks))
    for src in ("127.0.0.1", "127.0.0.2"):
        res = sipp("uac_rr.xml", f"127.0.0.1:{server.port}", "-m", "1", src=src, timeout=30)
        assert res.returncode == 0, res.stdout[-1500:]
    refused = sipp(
        "invite_expect_403.xml", f"127.0.0.1:{server.port}", "-m", "1", src="127.0.0.3", timeout=20
    )
    assert refused.returncode == 0, "a source on no trunk's allowlist is refused at the edge"
    records = server.records(expect=2)
    assert sorted(r["call"]["trunk"] for r in records) == ["pbx-a", "pbx-b"]


def test_calls_the_bot_hangs_up_never_take_capacity_down(voicebot) -> None:
    """The example dialplan's '#' -> goodbye path, 24 times through the edge in front of two UA
    workers (a bot hang-up used to kill the UA worker's loop: two goodbyes and every later call got
    408, then 503). One new call a second: each call's worker is replaced by a fresh process when the
    call ends, and at two a second a loaded CI machine could not start them as fast (calls waited
    3 s for a worker and got 503: a capacity limit of this box, not the defect this guards)."""
    server = _cluster(voicebot, workers=2, VOICEBOT_CALL__LOGIC="dialplan")
    res = sipp(
        "hash_expects_bye_rr.xml", f"127.0.0.1:{server.port}", "-m", "24", "-l", "2", "-r", "1", timeout=150
    )
    assert res.returncode == 0, res.stdout[-2500:]
    assert "Successful call" in res.stdout
    records = server.records(expect=24)
    assert len(records) == 24
    assert all(any(e["kind"] == "hangup_request" for e in r["events"]) for r in records)
    assert {r["call"]["ua_worker"] for r in records} == {0, 1}
    log = server.log()
    assert "ua.crashed" not in log and "ua.call_error" not in log and "Traceback" not in log
    lines = [
        ln
        for ln in log.splitlines()
        if re.search(r"ua\.(died|unresponsive|started)|pool_slow|fork_server", ln)
    ]
    # No UA worker died. (One CI run saw a third UA worker started with no crash logged; a UA worker
    # whose loop stalls past its heartbeat on a loaded machine is killed and restarted by design,
    # which is not what this test is about, so only such a restart is tolerated, and it is shown.)
    restarts = len(server.pids()) - 2
    stalled = len([ln for ln in lines if "ua.unresponsive" in ln])
    assert restarts == stalled, lines
    if stalled:
        print("UA worker restarted after a heartbeat stall:", *lines, sep="\n")


def _options(port: int) -> str | None:
    from support.net import sip_options

    return sip_options(port, timeout=0.3)


def test_edge_says_503_until_a_ua_worker_is_ready_and_never_sends_it_an_invite_before(
    voicebot,
) -> None:
    """A PBX that probes with OPTIONS sees 503 until a call can be taken; an INVITE in that window is
    answered 503 by the edge (Retry-After), not 408 after a worker that is still loading."""
    server = voicebot(
        wait=False,
        VOICEBOT_WORKERS__UA_WORKERS="2",
        VOICEBOT_WORKERS__UA_BASE_PORT=str(free_port_block(2)),
        VOICEBOT_EDGE__PROBE_INTERVAL_S="1",
        VOICEBOT_ASR__BACKEND="faster-whisper",  # call workers that take seconds to load
    )
    deadline = time.monotonic() + 30
    while (line := _options(server.port)) is None:
        assert time.monotonic() < deadline, "the edge never answered"
        time.sleep(0.05)
    early = [line]
    refused = 0
    while "ua.ready" not in server.log():
        early.append(_options(server.port))
        if refused == 0:
            res = sipp("invite_expect_503.xml", f"127.0.0.1:{server.port}", "-m", "1", timeout=10)
            assert res.returncode == 0, res.stdout[-1500:]
            refused += 1
        assert time.monotonic() < deadline + 60, "no UA worker got ready"
        time.sleep(0.1)
    assert refused == 1
    assert all(line is not None and line.startswith("SIP/2.0 503") for line in early[:-1]), early
    server.wait_log(r"edge\.backend_state.*active=True")
    assert (_options(server.port) or "").startswith("SIP/2.0 200")
    res = sipp("uac_rr.xml", f"127.0.0.1:{server.port}", "-m", "1", timeout=30)
    assert res.returncode == 0, res.stdout[-1500:]
    log = server.log()
    # the refused INVITE never reached a UA worker
    assert log.count("call.incoming") == 1 and "call.no_worker" not in log


def test_a_ua_worker_that_stops_serving_is_restarted_and_calls_go_on(voicebot) -> None:
    """SIGSTOP leaves a UA worker alive to the kernel and deaf to SIP, like a loop that died or hangs:
    its heartbeat stops, the edge stops using it at once, the supervisor kills and restarts it."""
    server = _cluster(voicebot, workers=2, VOICEBOT_WORKERS__HEARTBEAT_TIMEOUT_S="1.5")
    victim = server.pids(r"ua\.started.*index=0.*pid=(\d+)")[0]
    os.kill(victim, signal.SIGSTOP)
    try:
        server.wait_log(r"ua\.unresponsive", timeout=10)
        res = sipp("uac_rr.xml", f"127.0.0.1:{server.port}", "-m", "4", "-l", "2", "-d", "500", timeout=40)
        assert res.returncode == 0, res.stdout[-2000:]
        server.wait_log(r"ua\.ready", count=3, timeout=60)
        server.wait_log(r"edge\.backend_state.*active=True", count=3)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGCONT)
    assert len(server.pids()) == 3
    res = sipp("uac_rr.xml", f"127.0.0.1:{server.port}", "-m", "8", "-l", "8", "-d", "2000", timeout=60)
    assert res.returncode == 0, res.stdout[-2000:]
    per_worker = collections.Counter(r["call"]["ua_worker"] for r in server.records(expect=12))
    # the first 4 calls could only go to the live worker; of the 8 concurrent ones (4 a worker at
    # most) the restarted worker took its share
    assert per_worker[0] >= 4 and sum(per_worker.values()) == 12, per_worker


def test_callers_of_a_ua_worker_that_dies_get_a_bye_from_the_edge_and_the_others_go_on(
    voicebot, tmp_path: Path
) -> None:
    """kill -9 of a UA worker: its call workers die with it; the edge ends its dialogs (BYE to the
    callers) as soon as the supervisor sees it die, the calls are kept as failed with the cause, and
    the calls on the other worker carry on."""
    server = _cluster(voicebot, workers=2)
    callers = []
    for i in range(4):  # one by one: call-load dispatch then spreads them over both workers
        callers.append(call_bot(tmp_path, server.port, "--duration", "15", name=f"caller{i}"))
        answered = server.wait_log(r"call\.answered", count=i + 1)
    victim = server.pids(r"ua\.started.*index=0.*pid=(\d+)")[0]
    on_victim = sum("proc=ua0" in line for line in answered)
    assert on_victim >= 1
    os.kill(victim, signal.SIGKILL)
    (ended,) = server.wait_log(r"edge\.calls_ended.*calls=[1-9]", timeout=10)
    results = [c.result(timeout=40) for c in callers]
    assert sum(r["disconnected_by_remote"] for r in results) == on_victim, results
    (died,) = server.wait_log(r"ua\.died .*index=0")
    stamp = re.compile(r"^(\S+)Z")
    t_died = datetime.fromisoformat(stamp.match(died).group(1))  # type: ignore[union-attr]
    t_ended = datetime.fromisoformat(stamp.match(ended).group(1))  # type: ignore[union-attr]
    assert (t_ended - t_died).total_seconds() < 2.0
    server.wait_log(r"ua\.calls_lost .*index=0")
    import sqlite3

    db = sqlite3.connect(server.workdir / "voicebot.db")
    rows = db.execute("select disposition, end_reason from calls where id like 'lost-%'").fetchall()
    assert len(rows) == on_victim and all(d == "failed" and "UA worker 0 died" in r for d, r in rows)
