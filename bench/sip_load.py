#!/usr/bin/env python3
"""SIP load benchmark: N concurrent calls with media through the edge, for T seconds.

    .venv/bin/python bench/sip_load.py --calls 40 --hold 20
    .venv/bin/python bench/sip_load.py --calls 40 --hold 20 --nodes 2

Starts `voicebot run` (ceil(N/4) UA workers behind Kamailio) or, with --nodes M, `voicebot edge` and M
`voicebot run` nodes (cluster.role node, on 127.0.0.1, 127.0.0.2, ...; the UA workers shared out
between them) that share one SQLite database file, places N sipp calls that replay 7 s of
real speech, captures loopback with tshark, and prints: answered %, INVITE->200 p50/p95 (at the wire),
outgoing RTP inter-packet gap p50/p99/max, CPU % per call and RSS per call of the whole voicebot
process tree. Targets (docs/benchmarks.md): 40 calls, 100 % answered, gap p99 <= 30 ms,
INVITE->200 p95 <= 100 ms.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "bench")]

from pcap import read_udp  # noqa: E402
from procs import cpu_by_name, cpu_rss, tree  # noqa: E402
from stats import pct  # noqa: E402
from support.net import free_port, free_port_block, wait_sip  # noqa: E402


def analyse(capture: Path, sip_port: int, rtp: list[tuple[int, int]]) -> dict[str, object]:
    invites: dict[str, float] = {}
    answers: dict[str, float] = {}
    streams: dict[tuple[int, int], list[float]] = defaultdict(list)
    for d in read_udp(capture):
        # RTP only: version 2, and not RTCP (payload types 200-204 share the port range)
        if (
            any(lo <= d.src_port < hi for lo, hi in rtp)
            and len(d.payload) >= 12
            and d.payload[0] >> 6 == 2
            and not 72 <= d.payload[1] & 0x7F <= 76
        ):
            streams[(d.src_port, d.dst_port)].append(d.ts)
            continue
        if sip_port not in (d.src_port, d.dst_port):
            continue
        text = d.payload[:1500].decode(errors="replace")
        head = text.split("\r\n", 1)[0]
        call_id = next(
            (
                line.split(":", 1)[1].strip()
                for line in text.split("\r\n")
                if line.lower().startswith(("call-id:", "i:"))
            ),
            "",
        )
        cseq = next((line for line in text.split("\r\n") if line.lower().startswith("cseq:")), "")
        if head.startswith("INVITE ") and d.dst_port == sip_port:
            invites.setdefault(call_id, d.ts)
        elif head.startswith("SIP/2.0 200") and "INVITE" in cseq and d.src_port == sip_port:
            answers.setdefault(call_id, d.ts)
    setup = [(answers[c] - t) * 1000 for c, t in invites.items() if c in answers]
    gaps: list[float] = []
    for ts in streams.values():
        ts.sort()
        gaps += [(b - a) * 1000 for a, b in itertools.pairwise(ts)]
    return {
        "invites": len(invites),
        "answered": len(answers),
        "setup_ms": setup,
        "gaps_ms": gaps,
        "streams": len(streams),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--hold", type=float, default=20.0, help="seconds each call lasts")
    ap.add_argument("--rate", type=float, default=10.0, help="new calls per second")
    ap.add_argument("--ua-workers", type=int, default=0, help="default: ceil(calls / 4)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--probe-wait", type=float, default=6.0, help="seconds to let the edge probe workers")
    ap.add_argument("--nodes", type=int, default=1, help="M > 1: `voicebot edge` in front of M nodes")
    ap.add_argument(
        "--asr",
        default="",
        help="asr.backend for the run (default: the settings'); none = the SIP and media path alone",
    )
    ap.add_argument(
        "--fork-server",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fork call workers from the fork server (workers.fork_server, the default: true)",
    )
    args = ap.parse_args()
    k = args.ua_workers or max(1, math.ceil(args.calls / 4))
    work = Path(tempfile.mkdtemp(prefix="voicebot-bench-"))
    port = free_port()
    common = {
        "VOICEBOT_CONSOLE__LISTEN": "",  # no admin console on the measured nodes
        **os.environ,
        "VOICEBOT_SIP__RTP_PORTS_PER_WORKER": "40",
        "VOICEBOT_WORKERS__CALL_POOL_SIZE": "4",
        "VOICEBOT_EDGE__PIKE_REQS_PER_INTERVAL": "100000",
        "VOICEBOT_LOG__LEVEL": "info",
        "VOICEBOT_WORKERS__FORK_SERVER": "true" if args.fork_server else "false",
        **({"VOICEBOT_ASR__BACKEND": args.asr} if args.asr else {}),
    }
    servers: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    rtp: list[tuple[int, int]] = []

    def start(name: str, command: str, env: dict[str, str]) -> None:
        logs.append(work / f"{name}.log")
        servers.append(
            subprocess.Popen(
                [sys.executable, "-m", "voicebot.cli", command],
                cwd=REPO,
                env={**common, **env},
                stdout=logs[-1].open("wb"),
                stderr=subprocess.STDOUT,
            )
        )

    if args.nodes <= 1:
        rtp_lo = free_port_block(k * 40)
        rtp.append((rtp_lo, rtp_lo + k * 40))
        start(
            "voicebot",
            "run",
            {
                "VOICEBOT_SIP__PORT": str(port),
                "VOICEBOT_SIP__LISTEN": "127.0.0.1",
                "VOICEBOT_SIP__RTP_PORT_START": str(rtp_lo),
                "VOICEBOT_WORKERS__UA_WORKERS": str(k),
                "VOICEBOT_WORKERS__UA_BASE_PORT": str(free_port_block(k)),
                "VOICEBOT_RUN_DIR": str(work / "run"),
            },
        )
    else:
        url = f"sqlite+aiosqlite:///{work / 'voicebot.db'}"
        subprocess.run(
            [sys.executable, "-m", "voicebot.cli", "db", "upgrade"],
            cwd=REPO,
            env={**common, "VOICEBOT_DATABASE__URL": url},
            check=True,
        )
        share = [k // args.nodes + (1 if i < k % args.nodes else 0) for i in range(args.nodes)]
        for i, uas in enumerate(share):
            host, rtp_lo = f"127.0.0.{i + 1}", free_port_block(uas * 40)
            rtp.append((rtp_lo, rtp_lo + uas * 40))
            start(
                f"node{i}",
                "run",
                {
                    "VOICEBOT_CLUSTER__ROLE": "node",
                    "VOICEBOT_CLUSTER__NODE_ID": f"node{i}",
                    "VOICEBOT_CLUSTER__EDGE_SOURCES": '["127.0.0.1/32"]',
                    "VOICEBOT_SIP__LISTEN": host,
                    "VOICEBOT_SIP__ADVERTISE": host,
                    "VOICEBOT_SIP__RTP_PORT_START": str(rtp_lo),
                    "VOICEBOT_WORKERS__UA_WORKERS": str(uas),
                    "VOICEBOT_WORKERS__UA_BASE_PORT": str(free_port_block(uas)),
                    "VOICEBOT_RUN_DIR": str(work / f"run{i}"),
                    "VOICEBOT_DATABASE__URL": url,
                    "VOICEBOT_METRICS__LISTEN": f"127.0.0.1:{free_port()}",
                    "VOICEBOT_INFERENCE__LISTEN": f"127.0.0.1:{free_port()}",
                },
            )
        start(
            "edge",
            "edge",
            {
                "VOICEBOT_SIP__PORT": str(port),
                "VOICEBOT_SIP__LISTEN": "127.0.0.1",
                "VOICEBOT_SIP__TRANSPORTS": '["udp"]',
                "VOICEBOT_RUN_DIR": str(work / "run-edge"),
                "VOICEBOT_CLUSTER__BACKEND_NETWORKS": '["127.0.0.0/8"]',
                "VOICEBOT_DATABASE__URL": url,
                "VOICEBOT_METRICS__LISTEN": f"127.0.0.1:{free_port()}",
            },
        )

    def everything() -> list[int]:
        return [pid for s in servers for pid in tree(s.pid)]

    tshark = None
    try:
        wait_sip(port, timeout=60)
        t_ready = time.monotonic()
        while sum(p.read_text(errors="replace").count("ua.ready") for p in logs) < k:
            if time.monotonic() - t_ready > 180:
                raise TimeoutError("UA workers did not all become ready in 180 s")
            time.sleep(0.2)
        time.sleep(args.probe_wait)  # the edge marks a UA worker up at its next OPTIONS probe
        _, base_rss = cpu_rss(everything())
        capture = work / "load.pcap"
        tshark = subprocess.Popen(
            [
                "tshark",
                "-q",
                "-i",
                "lo",
                "-F",
                "pcap",
                "-w",
                str(capture),
                "-f",
                f"udp port {port} or (udp and ("
                + " or ".join(f"src portrange {lo}-{hi - 1}" for lo, hi in rtp)
                + "))",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2.0)
        hold_ms = int(args.hold * 1000)
        sipp = subprocess.Popen(
            [
                "sipp",
                "-sf",
                str(REPO / "bench" / "scenarios" / "load_call.xml"),
                f"127.0.0.1:{port}",
                "-i",
                "127.0.0.1",
                "-p",
                str(free_port()),
                "-mp",
                str(free_port_block(4)),
                "-m",
                str(args.calls),
                "-l",
                str(args.calls),
                "-r",
                str(args.rate),
                "-d",
                str(hold_ms),
                "-nostdin",
                "-timeout",
                f"{int(args.hold + 60)}s",
                "-timeout_error",
            ],
            cwd=REPO / "tests" / "data" / "sipp",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ramp = args.calls / args.rate
        time.sleep(ramp + 1.0)
        window = max(2.0, args.hold - 3.0)
        cpu0, _ = cpu_rss(everything())
        by_name0 = cpu_by_name()
        time.sleep(window / 2)
        _, rss_mid = cpu_rss(everything())
        time.sleep(window / 2)
        cpu1, _ = cpu_rss(everything())
        by_name1 = cpu_by_name()
        sipp_out, _ = sipp.communicate(timeout=args.hold + 120)
    finally:
        if tshark is not None:
            time.sleep(1.0)
            tshark.send_signal(signal.SIGINT)
            tshark.wait(timeout=20)
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            server.wait(timeout=90)
    stats = analyse(capture, port, rtp)
    setup, gaps = stats["setup_ms"], stats["gaps_ms"]
    assert isinstance(setup, list) and isinstance(gaps, list)
    result = {
        "calls": args.calls,
        "hold_s": args.hold,
        "ua_workers": k,
        "nodes": max(1, args.nodes),
        "asr": args.asr or "default",
        "fork_server": args.fork_server,
        "cores": os.cpu_count(),
        "answered_pct": round(100.0 * int(stats["answered"]) / args.calls, 1),  # type: ignore[call-overload]
        "sipp_rc": sipp.returncode,
        "invite_200_ms_p50": round(pct(setup, 50), 2),
        "invite_200_ms_p95": round(pct(setup, 95), 2),
        "rtp_streams": stats["streams"],
        "rtp_packets": len(gaps) + int(stats["streams"]),  # type: ignore[call-overload]
        "rtp_gap_ms_p50": round(pct(gaps, 50), 2),
        "rtp_gap_ms_p99": round(pct(gaps, 99), 2),
        "rtp_gap_ms_max": round(max(gaps), 2) if gaps else None,
        "cpu_pct_per_call": round((cpu1 - cpu0) / window * 100 / args.calls, 2),
        # everything voicebot runs (edge, UA workers, one process per call) divided by the calls
        "rss_mb_per_call": round(rss_mid / args.calls / 2**20, 1),
        "rss_mb_idle_total": round(base_rss / 2**20, 1),
        "rss_mb_total": round(rss_mid / 2**20, 1),
        "work_dir": str(work),
    }
    busy = {n: (by_name1[n] - by_name0.get(n, 0.0)) / window * 100 for n in by_name1}
    result["cpu_pct_by_process"] = {
        n: round(v, 1) for n, v in sorted(busy.items(), key=lambda kv: -kv[1]) if v >= 1.0
    }
    for key, value in result.items():
        print(f"{key:>20}: {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    (work / "sipp.out").write_text(sipp_out)
    if result["answered_pct"] < 100 or sipp.returncode:
        print(sipp_out[-2000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
