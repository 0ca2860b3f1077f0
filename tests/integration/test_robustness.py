"""Hostile and broken input never takes voicebot down, and one broken call never touches another."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from support.net import free_port, send_raw, sip_options
from support.peers import REPO, PjsuaPeer, call_bot, sipp

pytestmark = pytest.mark.integration
AUDIO = REPO / "tests" / "data" / "audio"


def _request(method: str, port: int, extra: str = "", body: str = "") -> bytes:
    b = f"z9hG4bK{random.randint(0, 1 << 30)}"
    return (
        f"{method} sip:100@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch={b};rport\r\n"
        f"Max-Forwards: 70\r\nTo: <sip:100@127.0.0.1>\r\nFrom: <sip:x@127.0.0.1>;tag=1\r\nCall-ID: {b}\r\n"
        f"CSeq: 1 {method}\r\n{extra}Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def test_malformed_sip_is_dropped_or_refused_and_calls_still_work(voicebot) -> None:
    server = voicebot()
    port = server.port
    hostile = [
        os.urandom(300),
        b"\x00" * 1400,
        b"INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx\r\n\r\n",
        _request("FOO", port),
        _request("BYE", port),
        _request("INVITE", port, "X-Pad: " + "a" * 30000 + "\r\n"),
        _request("NOTIFY", port, "Event: talk\r\n"),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKnope\r\n\r\n",
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        for data in hostile:
            send_raw(s, data, ("127.0.0.1", port), 0.2)
        bad_sdp = _request(
            "INVITE",
            port,
            "Content-Type: application/sdp\r\nContact: <sip:x@127.0.0.1:5999>\r\n",
            "v=0\r\nthis is not sdp\r\n",
        )
        assert send_raw(s, bad_sdp, ("127.0.0.1", port), 2.0) == "SIP/2.0 400 Bad SDP"
    # A TCP client that sends garbage and hangs up half way must not wedge the TCP transport.
    with socket.create_connection(("127.0.0.1", port), timeout=2) as t:
        t.sendall(b"INVITE sip:x SIP/2.0\r\nContent-Length: 999999\r\n\r\n" + os.urandom(2000))
    assert (sip_options(port) or "").startswith("SIP/2.0 200")
    res = sipp("uac.xml", f"127.0.0.1:{port}", "-m", "1", timeout=30)
    assert res.returncode == 0, res.stdout[-1500:]
    assert server.proc is not None and server.proc.poll() is None
    assert "Traceback" not in server.log()


def test_garbage_rtp_does_not_break_the_call(voicebot, tmp_path: Path) -> None:
    server = voicebot(VOICEBOT_CALL__TRANSFER_DIGITS="{}")
    rtp_start = int(server.env["VOICEBOT_SIP__RTP_PORT_START"])
    stop = threading.Event()

    def spray() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while not stop.is_set():
                for p in range(rtp_start, rtp_start + 8):
                    # random junk, truncated RTP headers, and RTP with absurd payload types
                    s.sendto(
                        random.choice(
                            [os.urandom(random.randint(1, 400)), b"\x80", b"\x80\x7f" + os.urandom(170)]
                        ),
                        ("127.0.0.1", p),
                    )
                time.sleep(0.01)

    sprayer = threading.Thread(target=spray, name="rtp-spray")
    sprayer.start()
    try:
        caller = call_bot(
            tmp_path,
            server.port,
            "--record",
            str(tmp_path / "heard.wav"),
            "--play",
            str(AUDIO / "transfer_sales_8k_s16.wav"),
            "--dtmf",
            "7@2",
            "--duration",
            "5",
        )
        result = caller.result()
    finally:
        stop.set()
        sprayer.join()
    assert result["confirmed"] and result["recording_rms"] > 300
    (rec,) = server.records(expect=1)
    assert rec["digits"] == ["7"]
    assert server.proc is not None and server.proc.poll() is None


def test_a_crashed_call_worker_is_replaced_and_only_its_own_call_notices(voicebot, tmp_path: Path) -> None:
    """kill -9 of one call's worker: that call goes on in a fresh worker (no BYE), the other call
    never notices, and the pool still answers new calls."""
    server = voicebot(VOICEBOT_CALL__TRANSFER_DIGITS="{}")
    args = ["--target", f"sip:100@127.0.0.1:{server.port}", "--duration", "8"]
    victim = PjsuaPeer(tmp_path, "victim", "caller", *args, "--rtp-port", str(free_port()))
    server.wait_log(r"call\.answered", count=1)
    other = PjsuaPeer(
        tmp_path,
        "other",
        "caller",
        *args,
        "--rtp-port",
        str(free_port()),
        "--record",
        str(tmp_path / "other.wav"),
    )
    (first, _) = server.wait_log(r"call\.answered", count=2)
    worker_pid = int(re.search(r"worker_pid=(\d+)", first).group(1))  # type: ignore[union-attr]
    time.sleep(1.0)
    os.kill(worker_pid, signal.SIGKILL)
    v, o = victim.result(), other.result()
    assert not v["disconnected_by_remote"], "the call whose worker died goes on: no BYE"
    assert not o["disconnected_by_remote"], "the other call must carry on"
    assert o["recording_rms"] > 300
    server.wait_log(r"call\.worker_died.*action=resume")
    server.wait_log(r"call\.worker_replaced")
    resumed = [r for r in server.records(expect=3) if r["call"]["worker_no"] == 2]
    assert len(resumed) == 1 and any(e["kind"] == "resumed" for e in resumed[0]["events"])
    # The pool replaced the dead worker: a new call is answered.
    assert sipp("uac.xml", f"127.0.0.1:{server.port}", "-m", "1", timeout=30).returncode == 0


def test_sources_outside_the_trunk_allowlist_get_403(voicebot) -> None:
    trunks = [{"name": "pbx", "allow": ["127.0.0.1/32"]}]
    server = voicebot(VOICEBOT_TRUNKS=json.dumps(trunks), VOICEBOT_SIP__LISTEN="0.0.0.0")
    refused = sipp(
        "invite_expect_403.xml", f"127.0.0.1:{server.port}", "-m", "1", src="127.0.0.2", timeout=20
    )
    assert refused.returncode == 0, refused.stdout[-1500:]
    allowed = sipp("uac.xml", f"127.0.0.1:{server.port}", "-m", "1", timeout=20)
    assert allowed.returncode == 0
    assert server.wait_log(r"call\.rejected.*code=403")
    assert 'voicebot_calls_rejected_total{code="403"} 1.0' in server.metrics()
