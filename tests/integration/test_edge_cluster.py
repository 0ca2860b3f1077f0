"""`voicebot run` with three UA workers behind the Kamailio edge, driven by real sipp/pjsua2 peers."""

from __future__ import annotations

import collections
import os
import signal
import time
from pathlib import Path

import pytest
from support.net import free_port_block
from support.peers import call_bot, sipp

pytestmark = pytest.mark.integration


def _cluster(voicebot, **extra: str):  # type: ignore[no-untyped-def]
    return voicebot(
        VOICEBOT_WORKERS__UA_WORKERS="3",
        VOICEBOT_WORKERS__UA_BASE_PORT=str(free_port_block(3)),
        VOICEBOT_EDGE__PROBE_INTERVAL_S="1",
        **extra,
    )


def test_ten_concurrent_calls_spread_over_three_workers(voicebot) -> None:
    server = _cluster(voicebot)
    time.sleep(2)  # one probe interval: every worker marked up
    res = sipp(
        "uac_rr.xml", f"127.0.0.1:{server.port}", "-m", "10", "-l", "10", "-r", "20", "-d", "3000", timeout=60
    )
    assert res.returncode == 0, res.stdout[-2000:]
    records = server.records(expect=10)
    per_worker = collections.Counter(r["call"]["ua_worker"] for r in records)
    assert sum(per_worker.values()) == 10
    assert set(per_worker) == {0, 1, 2}, per_worker
    assert max(per_worker.values()) <= 4  # nobody got more than a pjsua2 worker can hold


def test_killing_a_ua_worker_fails_over_and_it_is_restarted(voicebot) -> None:
    server = _cluster(voicebot)
    time.sleep(2)
    victim = server.pids()[0]
    os.kill(victim, signal.SIGKILL)
    # Calls placed right away still succeed: the edge fails over on timeout/5xx to a live worker.
    res = sipp(
        "uac_rr.xml", f"127.0.0.1:{server.port}", "-m", "6", "-l", "6", "-r", "10", "-d", "500", timeout=60
    )
    assert res.returncode == 0, res.stdout[-2000:]
    server.wait_log(r"ua\.died")
    server.wait_log(r"ua\.ready", count=4, timeout=40)
    assert len(server.pids()) == 4


def test_drain_through_the_edge_refuses_new_calls_and_byes_active_ones(voicebot, tmp_path: Path) -> None:
    server = _cluster(voicebot, VOICEBOT_WORKERS__DRAIN_TIMEOUT_S="4")
    time.sleep(2)
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
    time.sleep(2)
    for src in ("127.0.0.1", "127.0.0.2"):
        res = sipp("uac_rr.xml", f"127.0.0.1:{server.port}", "-m", "1", src=src, timeout=30)
        assert res.returncode == 0, res.stdout[-1500:]
    refused = sipp(
        "invite_expect_403.xml", f"127.0.0.1:{server.port}", "-m", "1", src="127.0.0.3", timeout=20
    )
    assert refused.returncode == 0, "a source on no trunk's allowlist is refused at the edge"
    records = server.records(expect=2)
    assert sorted(r["call"]["trunk"] for r in records) == ["pbx-a", "pbx-b"]
