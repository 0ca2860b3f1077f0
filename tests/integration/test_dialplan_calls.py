"""Real calls driven by the bundled example dialplan (what `make run` answers with)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.net import free_port
from support.peers import call_bot, queue_peer

pytestmark = pytest.mark.integration


def test_example_dialplan_transfers_to_support_on_key_2(voicebot, tmp_path: Path) -> None:
    queue_port = free_port()
    queues = {"sales": f"sip:sales@127.0.0.1:{queue_port}", "support": f"sip:support@127.0.0.1:{queue_port}"}
    server = voicebot(VOICEBOT_CALL__LOGIC="dialplan", VOICEBOT_QUEUES=json.dumps(queues))
    queue = queue_peer(tmp_path, queue_port, "--hold", "1", "--duration", "30", "--max-calls", "1")
    caller = call_bot(
        tmp_path, server.port, "--dtmf", "2@1.5", "--record", str(tmp_path / "heard.wav"), "--duration", "20"
    )
    c, q = caller.result(), queue.result()
    assert c["recording_rms"] > 300  # the dialplan's greeting and menu were heard
    assert c["refer_to"] is not None and c["refer_to"].startswith(f"<sip:support@127.0.0.1:{queue_port}")
    assert c["transferred_code"] == 200
    assert next(e["request_line"] for e in q["events"] if e["kind"] == "invite").startswith(
        "INVITE sip:support@"
    )
    (rec,) = server.records(expect=1)
    plays = [e["text"] for e in rec["events"] if e["kind"] == "play"]
    assert plays[0] == "Hello, this is voicebot." and plays[-1] == "Transferring you to support."
    assert any(e["kind"] == "flush" for e in rec["events"]), "the key press barged in on the menu prompt"
    server.wait_log(r"dialplan\.loaded.*dialplan=example")


def test_voicemail_records_the_caller_after_consent(voicebot, tmp_path: Path) -> None:
    import wave

    import numpy as np
    from support.peers import REPO

    routes = [{"match": "*", "dialplan": str(REPO / "dialplans" / "voicemail.yaml")}]
    server = voicebot(VOICEBOT_CALL__LOGIC="dialplan", VOICEBOT_ROUTES=json.dumps(routes))
    caller = call_bot(
        tmp_path,
        server.port,
        "--dtmf",
        "1@3",
        "#@13",
        "--play",
        str(REPO / "tests" / "data" / "audio" / "barge_in_long_8k_s16.wav"),
        "--play-at",
        "8",
        "--duration",
        "20",
    )
    assert caller.result()["disconnected_by_remote"]  # the bot thanked the caller and hung up
    (rec,) = server.records(expect=1)
    (recording,) = [e for e in rec["events"] if e["kind"] == "recording"]
    assert 3.0 < recording["seconds"] < 10.0
    with wave.open(recording["path"]) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    assert np.sqrt(np.mean(pcm**2)) > 300, "the message holds the caller's speech"
    assert [e["text"] for e in rec["events"] if e["kind"] == "play"][-1].startswith("Thanks, we will call")
