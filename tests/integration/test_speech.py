"""Calls understood by voice: VAD-segmented turns, Whisper, a transfer to the queue the caller named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.net import free_port
from support.peers import call_bot, queue_peer
from support.speech import spoken_wav

pytestmark = pytest.mark.integration


def test_caller_asks_for_sales_and_is_transferred_there(voicebot, tmp_path: Path) -> None:
    queue_port = free_port()
    server = voicebot(
        VOICEBOT_ASR__BACKEND="faster-whisper",
        VOICEBOT_CALL__LOGIC="dialplan",  # the bundled example: greeting, then a menu by voice or keys
        VOICEBOT_WORKERS__CALL_POOL_SIZE="1",
        VOICEBOT_QUEUES=json.dumps(
            {"sales": f"sip:sales@127.0.0.1:{queue_port}", "support": f"sip:support@127.0.0.1:{queue_port}"}
        ),
    )
    utterance = tmp_path / "ask_sales.wav"
    spoken_wav(utterance, "Hi. I would like to talk to someone in sales, please.")
    queue = queue_peer(tmp_path, queue_port, "--hold", "1", "--duration", "40", "--max-calls", "1")
    caller = call_bot(tmp_path, server.port, "--play", str(utterance), "--play-at", "1.0", "--duration", "30")
    c, q = caller.result(timeout=60), queue.result(timeout=60)
    (rec,) = server.records(expect=1)
    transcripts = [e for e in rec["events"] if e["kind"] == "transcript"]
    assert transcripts and "sales" in transcripts[0]["text"].lower(), rec["events"]
    assert any(e["kind"] == "barge_in" for e in rec["events"]), "speaking over the greeting stopped it"
    assert c["refer_to"] is not None and c["refer_to"].startswith(f"<sip:sales@127.0.0.1:{queue_port}")
    assert c["transferred_code"] == 200
    invites = [e for e in q["events"] if e["kind"] == "invite"]
    assert len(invites) == 1 and invites[0]["request_line"].startswith("INVITE sip:sales@")
    # The turn's stage times are kept with the call and exported on /metrics.
    turns = {e["turn"]: e for e in rec["events"] if e["kind"] == "turn"}
    assert turns[0]["greeting_ms"] is not None and turns[0]["greeting_ms"] < 5000
    reply = turns[1]
    stages = [reply[f"{s}_ms"] for s in ("asr_final", "decision", "tts_first_audio", "reply_out")]
    assert None not in stages and stages == sorted(stages), reply  # in order after the end of speech
    assert reply["decided_by"] == "dialplan"
    text = server.metrics()
    assert 'voicebot_turn_stage_seconds_count{stage="reply_out"} 1.0' in text
    assert "voicebot_greeting_first_audio_seconds_count 1.0" in text
    assert 'voicebot_calls_total{ended_by="transfer"} 1.0' in text
