"""Real SIP calls into `voicebot run` (one UA worker, no edge): sipp and pjsua2 peers on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.net import free_port
from support.peers import REPO, call_bot, queue_peer, sipp

pytestmark = pytest.mark.integration
AUDIO = REPO / "tests" / "data" / "audio"


def test_sipp_basic_calls_are_answered(voicebot) -> None:
    server = voicebot()
    res = sipp("uac.xml", f"127.0.0.1:{server.port}", "-m", "3", "-l", "2", "-r", "2", timeout=40)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    records = server.records(expect=3)
    assert len(records) == 3
    assert {r["call"]["trunk"] for r in records} == {"local"}


def test_pcap_replay_delivers_speech_and_rfc4733_digit(voicebot) -> None:
    server = voicebot()
    res = sipp("uac_pcap.xml", f"127.0.0.1:{server.port}", "-m", "1", "-mp", str(free_port()), timeout=40)
    assert res.returncode == 0, res.stdout[-2000:]
    (rec,) = server.records(expect=1)
    assert rec["digits"] == ["1"]
    # 7 s of real speech were replayed: the call worker captured loud, non-silent audio.
    assert rec["caller_audio_s"] > 7.0
    assert rec["caller_audio_rms"] > 300


def test_all_twelve_rfc4733_digits_reach_the_call_handler(voicebot) -> None:
    server = voicebot(VOICEBOT_CALL__TRANSFER_DIGITS="{}")
    res = sipp("dtmf_all.xml", f"127.0.0.1:{server.port}", "-m", "1", "-mp", str(free_port()), timeout=40)
    assert res.returncode == 0, res.stdout[-2000:]
    (rec,) = server.records(expect=1)
    assert "".join(rec["digits"]) == "0123456789*#"
    assert all(e["method"] == "rfc4733" for e in rec["events"] if e["kind"] == "dtmf")


def test_pjsua_caller_hears_the_bot_and_sip_info_dtmf_works(voicebot, tmp_path: Path) -> None:
    server = voicebot(VOICEBOT_CALL__TRANSFER_DIGITS="{}")
    caller = call_bot(
        tmp_path,
        server.port,
        "--record",
        str(tmp_path / "heard.wav"),
        "--play",
        str(AUDIO / "transfer_sales_8k_s16.wav"),
        "--dtmf",
        "5@2",
        "--dtmf-method",
        "info",
        "--duration",
        "5",
    )
    result = caller.result()
    assert result["confirmed"]
    assert result["recording_rms"] > 300, "the caller's recording of the bot is silent"
    (rec,) = server.records(expect=1)
    assert rec["digits"] == ["5"]
    assert [e["method"] for e in rec["events"] if e["kind"] == "dtmf"] == ["sip_info"]
    assert rec["caller_audio_rms"] > 300  # the caller's WAV reached the call worker


def test_transfer_refers_caller_to_queue_with_context(voicebot, tmp_path: Path) -> None:
    queue_port = free_port()
    server = voicebot(VOICEBOT_QUEUES=json.dumps({"sales": f"sip:sales@127.0.0.1:{queue_port}"}))
    queue = queue_peer(
        tmp_path,
        queue_port,
        "--hold",
        "1",
        "--duration",
        "25",
        "--max-calls",
        "1",
    )
    caller = call_bot(
        tmp_path,
        server.port,
        "--dtmf",
        "1@1",
        "--duration",
        "20",
    )
    c, q = caller.result(), queue.result()
    assert c["refer_to"].startswith(f"<sip:sales@127.0.0.1:{queue_port}?")
    assert c["transferred_code"] == 200  # the caller really reached the queue
    invites = [e for e in q["events"] if e["kind"] == "invite"]
    assert len(invites) == 1
    (rec,) = server.records(expect=1)
    assert f"X-Voicebot-Call-ID: {rec['call']['call_id']}" in invites[0]["headers"]
    results = [e for e in rec["events"] if e["kind"] == "transfer_result"]
    assert results == [{**results[0], "queue": "sales", "ok": True, "status": 200}]


def test_failed_transfer_is_reported_and_the_call_carries_on(voicebot, tmp_path: Path) -> None:
    queue_port = free_port()
    server = voicebot(VOICEBOT_QUEUES=json.dumps({"sales": f"sip:sales@127.0.0.1:{queue_port}"}))
    queue = queue_peer(
        tmp_path,
        queue_port,
        "--answer-code",
        "486",
        "--duration",
        "20",
        "--max-calls",
        "1",
    )
    caller = call_bot(
        tmp_path,
        server.port,
        "--dtmf",
        "1@1",
        "#@8",
        "--duration",
        "20",
    )
    c = caller.result()
    queue.kill()
    assert c["refer_to"] is not None
    (rec,) = server.records(expect=1)
    kinds = [e["kind"] for e in rec["events"]]
    result = next(e for e in rec["events"] if e["kind"] == "transfer_result")
    assert result["ok"] is False and result["status"] == 486
    # after the failure the bot apologised, then still reacted to '#' and hung up itself
    plays = [e["text"] for e in rec["events"] if e["kind"] == "play"]
    assert "Sorry, nobody in sales can take your call right now." in plays
    assert "hangup_request" in kinds
    assert rec["digits"] == ["1", "#"]


def test_silent_caller_is_hung_up_after_rtp_timeout(voicebot) -> None:
    server = voicebot(VOICEBOT_SIP__RTP_TIMEOUT_S="2")
    res = sipp("silent_caller_expects_bye.xml", f"127.0.0.1:{server.port}", "-m", "1", timeout=30)
    assert res.returncode == 0, res.stdout[-2000:]
    server.wait_log(r"call\.rtp_timeout")


def _loud_windows(path: Path, threshold: float = 300.0) -> list[float]:
    """Start times (s) of the 100 ms windows of a recording whose RMS is above threshold."""
    import wave

    import numpy as np

    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
        rate = w.getframerate()
    n = rate // 10
    return [i / rate for i in range(0, pcm.size - n, n) if np.sqrt(np.mean(pcm[i : i + n] ** 2)) > threshold]


def test_caller_speech_barges_in_on_the_greeting(voicebot, tmp_path: Path) -> None:
    server = voicebot(VOICEBOT_CALL__TRANSFER_DIGITS="{}")
    heard = tmp_path / "heard.wav"
    caller = call_bot(
        tmp_path,
        server.port,
        "--play",
        str(AUDIO / "barge_in_long_8k_s16.wav"),
        "--play-at",
        "1.5",
        "--record",
        str(heard),
        "--duration",
        "7",
    )
    assert caller.result()["confirmed"]
    (rec,) = server.records(expect=1)
    barge = [e for e in rec["events"] if e["kind"] == "barge_in"]
    # the caller starts talking 1.5 s into the ~6 s greeting; the turn opens after 200 ms of speech
    assert len(barge) == 1 and 1.5 < barge[0]["audio_t"] < 2.5, barge
    loud = _loud_windows(heard)
    assert loud and min(loud) < 1.0, "the caller heard the start of the greeting"
    # After the barge-in the bot was quiet: no loud window later than ~250 ms after it.
    assert max(loud) < barge[0]["audio_t"] + 0.25, (barge, loud)
