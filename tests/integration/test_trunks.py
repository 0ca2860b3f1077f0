"""Trunk features with real peers: digest registration, TLS transport, SDES-SRTP policy."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from support.net import free_port, free_port_block
from support.peers import SCENARIOS, SIPP_DIR, PjsuaPeer, sipp

pytestmark = pytest.mark.integration


def _digest_registrar(port: int, timeout: str, *extra: str) -> subprocess.Popen[str]:
    """A sipp registrar on ``port`` that challenges one REGISTER with digest auth and checks it."""
    cmd = ["sipp", "-sf", str(SCENARIOS / "registrar_digest.xml"), "-i", "127.0.0.1", "-p", str(port)]
    cmd += ["-m", "1", "-nostdin", "-timeout", timeout, "-timeout_error", *extra]
    return subprocess.Popen(cmd, cwd=SIPP_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_registers_with_digest_auth_and_never_logs_the_password(voicebot) -> None:
    reg_port = free_port()
    registrar = _digest_registrar(reg_port, "30s")
    trunks = [
        {
            "name": "pbx",
            "allow": ["127.0.0.0/8"],
            "registrar": f"sip:127.0.0.1:{reg_port}",
            "username": "voicebot",
            "password": "s3cret-Trunk",
            "realm": "pbx.test",
        }
    ]
    server = voicebot(VOICEBOT_TRUNKS=json.dumps(trunks))
    out, _ = registrar.communicate(timeout=40)
    assert registrar.returncode == 0, "registrar rejected our digest credentials:\n" + out[-1500:]
    server.wait_log(r"sip\.registration.*code=200.*trunk=pbx")
    assert "s3cret-Trunk" not in server.log()
    params = server.workdir / "run" / "ua-0.json"
    assert params.stat().st_mode & 0o077 == 0, "the file holding trunk secrets must be private"


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_call_over_tls(voicebot, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    tls_port = free_port()
    server = voicebot(
        VOICEBOT_SIP__TRANSPORTS='["udp","tcp","tls"]',
        VOICEBOT_SIP__TLS__PORT=str(tls_port),
        VOICEBOT_SIP__TLS__CERT_FILE=str(cert),
        VOICEBOT_SIP__TLS__KEY_FILE=str(key),
        VOICEBOT_CALL__TRANSFER_DIGITS="{}",
    )
    caller = PjsuaPeer(
        tmp_path,
        "caller",
        "caller",
        "--target",
        f"sip:100@127.0.0.1:{tls_port}",
        "--transport",
        "tls",
        "--rtp-port",
        str(free_port()),
        "--record",
        str(tmp_path / "heard.wav"),
        "--dtmf",
        "3@1",
        "--duration",
        "4",
    )
    result = caller.result()
    assert result["confirmed"] and result["recording_rms"] > 300
    server.wait_log(r"sip\.listening.*transport=tls")
    (rec,) = server.records(expect=1)
    assert rec["digits"] == ["3"]


def test_call_over_tcp(voicebot, tmp_path: Path) -> None:
    server = voicebot(VOICEBOT_CALL__TRANSFER_DIGITS="{}")
    res = sipp("uac.xml", f"127.0.0.1:{server.port}", "-t", "t1", "-m", "1", timeout=30)
    assert res.returncode == 0, res.stdout[-1500:]


def test_srtp_mandatory_trunk_refuses_plain_rtp_and_accepts_sdes(voicebot, tmp_path: Path) -> None:
    trunks = [{"name": "secure", "allow": ["127.0.0.0/8"], "srtp": "mandatory"}]
    server = voicebot(VOICEBOT_TRUNKS=json.dumps(trunks))
    plain = sipp("invite_expect_488.xml", f"127.0.0.1:{server.port}", "-m", "1", timeout=20)
    assert plain.returncode == 0, "plain RTP offer on an SRTP-mandatory trunk must get 488"
    caller = PjsuaPeer(
        tmp_path,
        "caller",
        "caller",
        "--target",
        f"sip:100@127.0.0.1:{server.port}",
        "--srtp",
        "mandatory",
        "--rtp-port",
        str(free_port()),
        "--record",
        str(tmp_path / "heard.wav"),
        "--duration",
        "4",
    )
    result = caller.result()
    assert result["confirmed"] and result["recording_rms"] > 300


def test_behind_the_edge_a_trunk_registers_once_from_the_edges_address(voicebot, tmp_path: Path) -> None:
    """Two UA workers behind Kamailio: the edge registers the trunk (digest auth, its own address in
    Contact), the UA workers do not, and the password stays out of the logs and the world-readable files."""
    reg_port = free_port()
    messages = tmp_path / "registrar-messages.log"
    registrar = _digest_registrar(reg_port, "40s", "-trace_msg", "-message_file", str(messages))
    trunks = [
        {
            "name": "pbx",
            "allow": ["127.0.0.0/8"],
            "registrar": f"sip:127.0.0.1:{reg_port}",
            "username": "voicebot",
            "password": "s3cret-Trunk",
            "realm": "pbx.test",
        }
    ]
    server = voicebot(
        VOICEBOT_TRUNKS=json.dumps(trunks),
        VOICEBOT_WORKERS__UA_WORKERS="2",
        VOICEBOT_WORKERS__UA_BASE_PORT=str(free_port_block(2)),
    )
    out, _ = registrar.communicate(timeout=60)
    assert registrar.returncode == 0, "registrar rejected the edge's digest credentials:\n" + out[-1500:]
    registers = [m for m in messages.read_text().split("\n\n") if m.lstrip().startswith("REGISTER")]
    assert registers and all(f"Contact: <sip:pbx@127.0.0.1:{server.port}>" in m for m in registers), registers
    assert not re.search(r"sip\.registration.*trunk=pbx", server.log())  # no UA worker registered
    edge_files = server.workdir / "run" / "edge"
    assert (edge_files / "uacreg").stat().st_mode & 0o077 == 0
    assert (edge_files / "uacreg" / "uacreg").stat().st_mode & 0o077 == 0
    for path in [server.log_path, edge_files / "kamailio.log", edge_files / "kamailio.cfg"]:
        assert "s3cret-Trunk" not in path.read_text(errors="replace"), path
