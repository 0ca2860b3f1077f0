"""Trunk features with real peers: digest registration, TLS transport, SDES-SRTP policy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support.net import free_port
from support.peers import SCENARIOS, SIPP_DIR, PjsuaPeer, sipp

pytestmark = pytest.mark.integration


def test_registers_with_digest_auth_and_never_logs_the_password(voicebot) -> None:
    reg_port = free_port()
    registrar = subprocess.Popen(
        [
            "sipp",
            "-sf",
            str(SCENARIOS / "registrar_digest.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(reg_port),
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "30s",
            "-timeout_error",
        ],
        cwd=SIPP_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
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
