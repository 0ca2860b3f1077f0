"""Two voicebot nodes behind one `voicebot edge`, sharing a real PostgreSQL: the nodes announce their
UA workers in the database, the edge dispatches real sipp/pjsua2 calls to them, takes a node that is
killed (-9, the whole process tree) or drains out, and ends the calls a dead node leaves behind."""

from __future__ import annotations

import asyncio
import collections
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pg_server import PostgresServer
from sqlalchemy import text
from support.net import free_port, free_port_block, sip_options
from support.peers import call_bot, sipp
from support.procs import kill_tree
from support.server import VoicebotServer, server_env

from voicebot.db.engine import opened

pytestmark = pytest.mark.integration

CLUSTER = {
    "VOICEBOT_CLUSTER__BEAT_S": "0.5",
    "VOICEBOT_CLUSTER__STALE_AFTER_S": "3",
    "VOICEBOT_CLUSTER__SYNC_S": "0.5",
}


def live(edge: VoicebotServer) -> set[str]:
    """UA workers the edge made active and did not take out again since."""
    state: dict[str, bool] = {}
    for m in re.finditer(r"edge\.backend_state\s+active=(True|False) backend=(\S+)", edge.log()):
        state[m.group(2)] = m.group(1) == "True"
    return {uri for uri, on in state.items() if on}


def kamailio_log(edge: VoicebotServer) -> str:
    path = edge.workdir / "run" / "edge" / "kamailio.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no kamailio log)"


@dataclass
class Cluster:
    url: str
    edge: VoicebotServer  # `voicebot edge`
    nodes: dict[str, VoicebotServer]

    def calls_per_node(self, expect: int, timeout: float = 20.0) -> collections.Counter[str]:
        """The calls table of the shared database, by the node that took each call."""
        deadline = time.monotonic() + timeout
        while True:
            rows = asyncio.run(_query(self.url, "SELECT node, count(*) FROM calls GROUP BY node"))
            counts = collections.Counter({str(node): int(n) for node, n in rows})
            if sum(counts.values()) >= expect or time.monotonic() > deadline:
                return counts
            time.sleep(0.2)

    def backends(self) -> list[tuple[Any, ...]]:
        return asyncio.run(_query(self.url, "SELECT node, uri, state FROM sip_backends ORDER BY uri"))

    def why(self, sipp_out: str = "") -> str:
        parts = [
            sipp_out[-1500:],
            "--- edge ---",
            self.edge.log()[-3000:],
            "--- kamailio ---",
            kamailio_log(self.edge),
        ]
        for name, node in self.nodes.items():
            lines = [ln for ln in node.log().splitlines() if re.search(r"cluster\.|ua\.|call\.rej|error", ln)]
            parts += [f"--- node {name} ---", *lines[-25:]]
        return "\n".join(parts)


async def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    async with opened(url) as engine, engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql))).all()]


def _node(tmp_path: Path, name: str, host: str, url: str, **extra: str) -> VoicebotServer:
    workdir = tmp_path / name
    workdir.mkdir()
    env = server_env(
        workdir,
        free_port(),  # nothing listens on sip.port: the node has no public SIP face of its own
        free_port_block(200),
        VOICEBOT_CLUSTER__ROLE="node",
        VOICEBOT_CLUSTER__NODE_ID=name,
        VOICEBOT_CLUSTER__EDGE_SOURCES='["127.0.0.1/32"]',
        VOICEBOT_SIP__LISTEN=host,
        VOICEBOT_SIP__ADVERTISE=host,
        VOICEBOT_WORKERS__UA_WORKERS="2",
        VOICEBOT_WORKERS__UA_BASE_PORT=str(free_port_block(2)),
        VOICEBOT_DATABASE__URL=url,
        VOICEBOT_WORKERS__DRAIN_TIMEOUT_S="15",  # longer than the drain test's calls
        **CLUSTER,
        **extra,
    )
    server = VoicebotServer(workdir, int(env["VOICEBOT_SIP__PORT"]), env).start(wait=False)
    return server


@pytest.fixture
def cluster(tmp_path: Path, postgres: PostgresServer) -> Iterator[Cluster]:
    url = postgres.create_database(f"cluster{free_port()}")
    port = free_port()
    edge_env = {
        "VOICEBOT_SIP__LISTEN": "127.0.0.1",
        "VOICEBOT_SIP__PORT": str(port),
        "VOICEBOT_SIP__TRANSPORTS": '["udp"]',
        "VOICEBOT_RUN_DIR": str(tmp_path / "edge" / "run"),
        "VOICEBOT_DATABASE__URL": url,
        "VOICEBOT_METRICS__LISTEN": f"127.0.0.1:{free_port()}",
        "VOICEBOT_EDGE__PROBE_INTERVAL_S": "1",
        "VOICEBOT_CLUSTER__BACKEND_NETWORKS": '["127.0.0.0/8"]',
        "VOICEBOT_WORKERS__DRAIN_TIMEOUT_S": "12",  # longer than the edge drain test's calls
        **CLUSTER,
    }
    # the nodes first: the first one migrates the shared database, then the edge reads it
    nodes = {"a": _node(tmp_path, "a", "127.0.0.1", url)}
    nodes["a"].wait_log(r"ua\.ready", count=2, timeout=75)
    nodes["b"] = _node(tmp_path, "b", "127.0.0.2", url)
    (tmp_path / "edge").mkdir()
    edge = VoicebotServer(tmp_path / "edge", port, edge_env, command="edge").start()
    c = Cluster(url, edge, nodes)
    try:
        nodes["b"].wait_log(r"ua\.ready", count=2, timeout=75)
        deadline = time.monotonic() + 20
        while len(live(edge)) < 4:  # four distinct UA workers active at the edge
            assert time.monotonic() < deadline, c.why()
            time.sleep(0.2)
        yield c
    finally:
        for node in nodes.values():
            node.stop()
        edge.stop()


def test_calls_spread_over_two_nodes_and_a_killed_node_is_taken_out(cluster: Cluster, tmp_path: Path) -> None:
    port = cluster.edge.port
    assert cluster.edge.probe("readyz")[0] == 200
    res = sipp("uac_rr.xml", f"127.0.0.1:{port}", "-m", "8", "-l", "8", "-r", "20", "-d", "3000", timeout=60)
    assert res.returncode == 0, cluster.why(res.stdout)
    per_node = cluster.calls_per_node(expect=8)
    assert per_node == {"a": 4, "b": 4}, per_node  # least load first: 2 calls on each of 4 UA workers

    # four long calls, one per UA worker; then node b dies with its whole process tree
    callers = [call_bot(tmp_path, port, "--duration", "15", name=f"long{i}") for i in range(4)]
    for node in cluster.nodes.values():
        node.wait_log(r"call\.answered", count=4 + 2, timeout=20)
    victim = cluster.nodes["b"]
    assert victim.proc is not None
    killed_at = time.monotonic()
    kill_tree(victim.proc.pid)
    victim.proc.wait(timeout=10)
    # new calls at once: all on node a (a call offered to b first fails over after 1 s)
    res = sipp("uac_rr.xml", f"127.0.0.1:{port}", "-m", "4", "-l", "2", "-r", "10", "-d", "1000", timeout=60)
    assert res.returncode == 0, cluster.why(res.stdout)
    assert time.monotonic() - killed_at < 10.0
    ended = 0
    while ended < 2 and time.monotonic() - killed_at < 20:  # one line per UA worker of b
        ended = sum(int(n) for n in re.findall(r"edge\.calls_lost.*? calls=(\d+)", cluster.edge.log()))
        time.sleep(0.2)
    took = time.monotonic() - killed_at
    assert ended == 2, cluster.why()
    # stale after 3 s, then its UA workers also failed the probes for 1 s probe + 1 s timeout + a sync
    assert took < 12.0, took
    results = [c.result() for c in callers]
    ended_by_edge = [r for r in results if r["disconnected_by_remote"]]
    assert len(ended_by_edge) == 2, results  # b's two callers got a BYE, not silence
    # every call in the shared database: b's two lost calls recorded by the edge as failed
    assert cluster.calls_per_node(expect=16) == {"a": 4 + 2 + 4, "b": 4 + 2}, cluster.why()
    lost_rows = asyncio.run(
        _query(cluster.url, "SELECT disposition, end_reason FROM calls WHERE id LIKE 'lost-%'")
    )
    assert len(lost_rows) == 2 and all(r[0] == "failed" and "node b" in r[1] for r in lost_rows), lost_rows
    status, body = cluster.edge.probe("readyz")
    assert status == 200 and body["backends_live"] == 2, body


def test_a_draining_node_leaves_the_edge_and_its_calls_finish(cluster: Cluster, tmp_path: Path) -> None:
    port = cluster.edge.port
    leaving = cluster.nodes["b"]
    assert leaving.proc is not None
    callers = [call_bot(tmp_path, port, "--duration", "6", name=f"stays{i}") for i in range(4)]
    for node in cluster.nodes.values():
        node.wait_log(r"call\.answered", count=2, timeout=20)
    leaving.proc.send_signal(signal.SIGTERM)
    cluster.edge.wait_log(r"edge\.backend_state.*active=False.*why=draining", count=2, timeout=10)
    res = sipp("uac_rr.xml", f"127.0.0.1:{port}", "-m", "4", "-l", "4", "-r", "20", "-d", "1000", timeout=60)
    assert res.returncode == 0, cluster.why(res.stdout)
    results = [c.result() for c in callers]
    # the calls on the draining node went on to their end (the caller hung up, not the node)
    assert all(r["confirmed"] and not r["disconnected_by_remote"] for r in results), results
    assert leaving.proc.wait(timeout=40) == 0
    cluster.edge.wait_log(r"edge\.backend_removed", count=2, timeout=10)
    assert [row[0] for row in cluster.backends()] == ["a", "a"]
    assert cluster.calls_per_node(expect=8) == {"a": 6, "b": 2}, cluster.why()
    assert "edge.calls_lost" not in cluster.edge.log()

    # Now the edge itself drains (SIGTERM, as systemd or Kubernetes stops it) with two calls up.
    edge = cluster.edge
    assert edge.proc is not None
    callers = [call_bot(tmp_path, port, "--duration", "5", name=f"through{i}") for i in range(2)]
    cluster.nodes["a"].wait_log(r"call\.answered", count=6 + 2, timeout=20)
    edge.proc.send_signal(signal.SIGTERM)
    edge.wait_log(r"edge\.draining", timeout=10)
    # not ready, and a PBX probing with OPTIONS or sending a new INVITE gets 503 at once
    status, body = edge.probe("readyz")
    assert status == 503 and "draining" in body["why"], body
    assert (sip_options(port) or "").startswith("SIP/2.0 503"), sip_options(port)
    refused = sipp("invite_expect_503.xml", f"127.0.0.1:{port}", "-m", "1", timeout=10)
    assert refused.returncode == 0, "a draining edge must answer new INVITEs with 503"
    # the two calls in progress go on to their end through the edge (the callers' BYEs are relayed)
    results = [c.result() for c in callers]
    assert all(r["confirmed"] and not r["disconnected_by_remote"] for r in results), results
    assert edge.proc.wait(timeout=20) == 0
    log = edge.log()
    assert "edge.stopped" in log and "edge.drain_timeout" not in log, log[-2000:]
    assert cluster.calls_per_node(expect=10) == {"a": 8, "b": 2}, cluster.why()
