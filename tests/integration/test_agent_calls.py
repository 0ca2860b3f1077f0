"""LLM conversations on real calls: a real llama-server (SmolLM2) answers the `agent` step of
dialplans/assistant.yaml, its reply streams into the TTS sentence by sentence, keys interrupt it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.llm_server import MODEL_NAME
from support.net import free_port
from support.peers import REPO, call_bot, queue_peer

pytestmark = pytest.mark.integration


def test_the_llm_speaks_on_a_real_call_and_a_key_interrupts_it(
    voicebot, llm_server: str, tmp_path: Path
) -> None:
    server = voicebot(
        VOICEBOT_CALL__LOGIC="dialplan",
        VOICEBOT_ROUTES=json.dumps([{"match": "*", "dialplan": str(REPO / "dialplans" / "assistant.yaml")}]),
        VOICEBOT_LLM__MODEL=f"openai/{MODEL_NAME}",
        VOICEBOT_LLM__API_BASE=llm_server,
        VOICEBOT_LLM__MAX_TOKENS="60",
    )
    # The welcome is ~2 s; the LLM's greeting follows. Key 5 at 4 s lands in (or just after) it.
    caller = call_bot(
        tmp_path, server.port, "--dtmf", "5@4", "--record", str(tmp_path / "heard.wav"), "--duration", "25"
    )
    c = caller.result(timeout=60)
    assert c["recording_rms"] > 300
    (rec,) = server.records(expect=1)
    events = rec["events"]
    replies = [e for e in events if e["kind"] == "agent_reply"]
    assert replies and all(r["ok"] for r in replies), events
    spoken = [e for e in events if e["kind"] == "play" and e["mark"].startswith("agent#")]
    assert spoken and all(e["ms"] > 0 for e in spoken), "LLM sentences were synthesised and queued"
    turns = [e for e in events if e["kind"] == "agent_turn"]
    key = next(e for e in events if e["kind"] == "dtmf")
    # The key press went to the LLM as a turn of its own: right away, with the caller's "(pressed 5)"
    # after whatever of the first reply had been spoken (nothing, when a cold llama-server on a busy
    # machine had not answered within the 4 s).
    assert len(turns) >= 2 and turns[1]["t"] == key["t"] and turns[1]["messages"] >= 1
    assert any(e["kind"] == "agent_interrupted" for e in events) or replies[0]["sentences"] >= 1
    # The no-input timer runs only once the LLM's reply has been heard in full.
    for i, e in enumerate(events):
        if e["kind"] == "no_input":
            queued = {p["mark"] for p in events[:i] if p["kind"] == "play"}
            played = {p["mark"] for p in events[:i] if p["kind"] == "played"}
            assert queued <= played, f"no-input fired at {e['t']} s while {sorted(queued - played)} played"


def test_an_unreachable_llm_sends_the_caller_to_a_person(voicebot, tmp_path: Path) -> None:
    queue_port = free_port()
    server = voicebot(
        VOICEBOT_CALL__LOGIC="dialplan",
        VOICEBOT_ROUTES=json.dumps([{"match": "*", "dialplan": str(REPO / "dialplans" / "assistant.yaml")}]),
        VOICEBOT_QUEUES=json.dumps({"support": f"sip:support@127.0.0.1:{queue_port}"}),
        VOICEBOT_LLM__MODEL=f"openai/{MODEL_NAME}",
        VOICEBOT_LLM__API_BASE=f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
        VOICEBOT_LLM__FIRST_TOKEN_TIMEOUT_S="2",
    )
    queue = queue_peer(tmp_path, queue_port, "--hold", "1", "--duration", "30", "--max-calls", "1")
    caller = call_bot(tmp_path, server.port, "--duration", "25")
    c, _ = caller.result(timeout=60), queue.result(timeout=60)
    (rec,) = server.records(expect=1)
    # Normally transferred ~4 s into the call; if not, say what the call did and what the node logged.
    events = [(e["kind"], e.get("t")) for e in rec["events"]]
    assert c["transferred_code"] == 200, f"{c}\n{events}\n{server.log()[-4000:]}"
    failed = [e for e in rec["events"] if e["kind"] == "llm_failed"]
    assert failed and "did not answer" in failed[0]["error"]
    assert [e["queue"] for e in rec["events"] if e["kind"] == "transfer_request"] == ["support"]
    assert re.search(r'^voicebot_stage_errors_total\{stage="llm"\} [1-9]', server.metrics(), re.M)


def test_llm_local_starts_the_bundled_model_and_answers_an_agent_step(voicebot, tmp_path: Path) -> None:
    """llm.local: `voicebot run` starts llama-server with the bundled SmolLM2 itself, supervises it
    (killed: restarted), the call's agent step streams its reply, and it stops with the node."""
    import os
    import signal
    import time

    listen = f"127.0.0.1:{free_port()}"
    server = voicebot(
        VOICEBOT_CALL__LOGIC="dialplan",
        VOICEBOT_ROUTES=json.dumps([{"match": "*", "dialplan": str(REPO / "dialplans" / "assistant.yaml")}]),
        VOICEBOT_LLM__LOCAL="true",
        VOICEBOT_LLM__LOCAL_LISTEN=listen,
        VOICEBOT_LLM__MAX_TOKENS="40",
    )
    (pid,) = server.pids(r"llm_server\.started.*pid=(\d+)")
    os.kill(pid, signal.SIGKILL)  # a crashed model server comes back on the same address
    deadline = time.monotonic() + 60
    while server.log().count("llm_server.ready") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "llm_server.died" in server.log()
    caller = call_bot(tmp_path, server.port, "--duration", "14")
    caller.result(timeout=60)
    (rec,) = server.records(expect=1)
    replies = [e for e in rec["events"] if e["kind"] == "agent_reply"]
    assert replies and replies[0]["ok"] and replies[0]["sentences"] >= 1, rec["events"]
    usage = [e for e in rec["events"] if e["kind"] == "llm_usage"]
    assert usage and usage[0]["model"] == f"openai/{MODEL_NAME}"
    (restarted,) = server.pids(r"llm_server\.started.*pid=(\d+)")[1:]
    assert server.stop() == 0
    assert not Path(f"/proc/{restarted}").exists(), "the model server stops with the node"
