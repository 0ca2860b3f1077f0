"""One trace per call, received by a real OTLP/HTTP receiver: a caller says "Sales, please." to the
example dialplan through the node's speech service and is transferred. The call worker's spans (call,
sip.invite, greeting, the turn and its stages, the transfer), the speech service's (its decode, in
another process) and the UA worker's (the SIP side: answer wait, REFER to final NOTIFY) share the
call's trace, under the call's root span."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from support.net import free_port
from support.otlp import Span, otlp_receiver
from support.peers import call_bot, queue_peer
from support.speech import spoken_wav

pytestmark = pytest.mark.integration


def test_a_call_is_one_trace_across_the_call_worker_and_the_speech_service(voicebot, tmp_path: Path) -> None:
    queue_port = free_port()
    queues = json.dumps({q: f"sip:{q}@127.0.0.1:{queue_port}" for q in ("sales", "support")})
    with otlp_receiver() as receiver:
        server = voicebot(
            VOICEBOT_CALL__LOGIC="dialplan",
            VOICEBOT_ASR__BACKEND="faster-whisper",
            VOICEBOT_WORKERS__CALL_POOL_SIZE="1",
            VOICEBOT_QUEUES=queues,
            VOICEBOT_TRACING__OTLP_ENDPOINT=receiver.url,
            VOICEBOT_TRACING__SERVICE_NAME="vb-test",
        )
        speech = tmp_path / "sales.wav"
        spoken_wav(speech, "Sales, please.")
        queue = queue_peer(tmp_path, queue_port, "--hold", "1", "--duration", "40", "--max-calls", "1")
        caller = call_bot(
            tmp_path, server.port, "--play", str(speech), "--play-at", "1.0", "--duration", "25"
        )
        c = caller.result(timeout=60)
        queue.result(timeout=60)
        assert c["transferred_code"] == 200, c

        def complete(spans: list[Span]) -> bool:
            names = {s.name for s in spans}
            return {"call", "transfer", "asr.transcribe", "ua.call"} <= names

        spans = receiver.wait(complete, timeout=30)
    names = sorted({s.name for s in spans})
    assert {
        "call",
        "sip.invite",
        "greeting",
        "turn 1",
        "asr",
        "decision",
        "transfer",
        "asr.transcribe",
    } <= set(names), names
    (root,) = [s for s in spans if s.name == "call"]
    assert root.parent == "" and root.service == "vb-test"
    call_id = root.attributes["voicebot.call_id"]
    assert root.trace_id == call_id  # the trace id is the call id: every process finds the trace
    assert root.attributes["voicebot.outcome"] == "escalated"
    assert root.attributes["voicebot.failure_class"] == "completed"
    assert all(s.trace_id == root.trace_id for s in spans), {(s.name, s.trace_id) for s in spans}
    by_id = {s.span_id: s for s in spans}
    # the speech service's decode (another process, another service name) hangs off the call's root
    decodes = [s for s in spans if s.name == "asr.transcribe"]
    assert decodes and all(d.parent == root.span_id and d.service == "vb-test-speech" for d in decodes)
    assert all(d.attributes["audio_s"] > 0 for d in decodes)
    # the turn's stages are its children, in order, inside it; the turn and the transfer inside the call
    (turn,) = [s for s in spans if s.name == "turn 1"]
    assert turn.parent == root.span_id and turn.attributes["asr.provider"] == "local"
    stages = sorted((s for s in spans if s.parent == turn.span_id), key=lambda s: s.start_ns)
    assert [s.name for s in stages][:2] == ["asr", "decision"], [s.name for s in stages]
    assert all(turn.start_ns <= s.start_ns <= s.end_ns <= turn.end_ns + 1_000_000 for s in stages)
    (transfer,) = [s for s in spans if s.name == "transfer"]
    assert by_id[transfer.parent] is root and transfer.attributes["voicebot.queue"] == "sales"
    invite = next(s for s in spans if s.name == "sip.invite")
    assert invite.start_ns == root.start_ns and invite.end_ns <= turn.start_ns
    # the UA worker's own spans (a third process): the SIP side, under the same root
    (ua,) = [s for s in spans if s.name == "ua.call"]
    assert (
        ua.parent == root.span_id
        and ua.service == "vb-test-ua"
        and ua.attributes["voicebot.call_id"] == call_id
    )
    assert abs(ua.start_ns - root.start_ns) < 50_000_000  # both begin at the INVITE
    ua_children = {s.name: s for s in spans if s.parent == ua.span_id}
    assert set(ua_children) == {"ua.answer_wait", "ua.transfer"}, set(ua_children)
    assert ua_children["ua.transfer"].attributes["sip.status_code"] == 200
    assert ua_children["ua.transfer"].attributes["voicebot.queue"] == "sales"
    assert ua.start_ns <= ua_children["ua.answer_wait"].end_ns <= invite.end_ns + 50_000_000
    for s in spans:
        if s.name.startswith("ua."):  # another process's clock readings of the same moments
            assert root.start_ns - 50_000_000 <= s.start_ns <= s.end_ns <= root.end_ns + 500_000_000, s.name
        else:
            assert root.start_ns <= s.start_ns <= s.end_ns <= root.end_ns + 50_000_000, s.name


def test_a_call_worker_lost_mid_call_shows_as_the_gap_until_another_took_over(
    voicebot, tmp_path: Path
) -> None:
    """The call worker is killed during the menu prompt; the UA's ``ua.no_worker`` span covers the
    time the call had no worker, under the UA's call span, and the call went on (keys still work)."""
    queue_port = free_port()
    queues = json.dumps({q: f"sip:{q}@127.0.0.1:{queue_port}" for q in ("sales", "support")})
    with otlp_receiver() as receiver:
        server = voicebot(
            VOICEBOT_CALL__LOGIC="dialplan",
            VOICEBOT_QUEUES=queues,
            VOICEBOT_TRACING__OTLP_ENDPOINT=receiver.url,
            VOICEBOT_TRACING__SERVICE_NAME="vb-lost",
        )
        queue = queue_peer(tmp_path, queue_port, "--hold", "1", "--duration", "40", "--max-calls", "1")
        caller = call_bot(tmp_path, server.port, "--dtmf", "1@8", "--duration", "25")
        (line,) = server.wait_log(r"call\.answered", count=1)
        pid = int(re.search(r"worker_pid=(\d+)", line).group(1))  # type: ignore[union-attr]
        time.sleep(2.5)
        killed = time.time_ns()
        os.kill(pid, signal.SIGKILL)
        c = caller.result(timeout=60)
        queue.result(timeout=60)
        assert c["transferred_code"] == 200, c  # the key pressed after the loss still transferred
        spans = receiver.wait(lambda spans: {"ua.call", "ua.transfer"} <= {s.name for s in spans}, 30)
    (ua,) = [s for s in spans if s.name == "ua.call"]
    (gap,) = [s for s in spans if s.name == "ua.no_worker"]
    assert gap.parent == ua.span_id and gap.service == "vb-lost-ua" and gap.trace_id == ua.trace_id
    assert gap.attributes["voicebot.deaths"] == 1
    # it starts when the UA saw the worker go (within a second of the kill) and ends when the next
    # worker took the call: seconds at most, inside the call
    assert killed - 100_000_000 <= gap.start_ns <= killed + 1_000_000_000, (gap.start_ns - killed) / 1e9
    assert 0 < gap.end_ns - gap.start_ns < 5_000_000_000
    assert ua.start_ns < gap.start_ns and gap.end_ns < ua.end_ns
    (transfer,) = [s for s in spans if s.name == "ua.transfer"]
    assert transfer.start_ns > gap.end_ns  # the transfer was made by the worker that took over
