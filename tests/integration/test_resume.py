"""Calls outlive their worker: a per-call worker killed (-9) or stopped mid-call is replaced and the
call goes on from its last checkpoint, on the same SIP dialog and RTP stream; side effects in flight
are not repeated blindly. Real pjsua2 callers and queues, the example dialplan, a real HTTP backend."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from support.jsonapi import JsonApi, Response
from support.net import free_port
from support.peers import call_bot, queue_peer

pytestmark = pytest.mark.integration


def _worker_pid(server: Any) -> int:
    (line,) = server.wait_log(r"call\.answered", count=1)
    return int(re.search(r"worker_pid=(\d+)", line).group(1))  # type: ignore[union-attr]


def _menu_call(voicebot, tmp_path: Path, fault: int) -> tuple[dict[str, Any], Any, int]:  # type: ignore[no-untyped-def]
    """The example dialplan; the caller presses 1 at 8 s. ``fault`` hits the call worker 2.5 s into
    the call, during the menu prompt. Returns the caller's report, the server and the queue port."""
    queue_port = free_port()
    queues = {q: f"sip:{q}@127.0.0.1:{queue_port}" for q in ("sales", "support")}
    server = voicebot(VOICEBOT_CALL__LOGIC="dialplan", VOICEBOT_QUEUES=json.dumps(queues))
    queue = queue_peer(tmp_path, queue_port, "--hold", "1", "--duration", "40", "--max-calls", "1")
    caller = call_bot(
        tmp_path, server.port, "--dtmf", "1@8", "--record", str(tmp_path / "heard.wav"), "--duration", "25"
    )
    pid = _worker_pid(server)
    time.sleep(2.5)
    os.kill(pid, fault)
    try:
        c = caller.result(timeout=60)
    finally:
        if fault == signal.SIGSTOP:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    queue.result(timeout=60)
    return c, server, queue_port


def _check_resumed(c: dict[str, Any], server: Any, queue_port: int) -> dict[str, Any]:
    # The caller was transferred by the key pressed after the fault: the call was never dropped.
    assert c["refer_to"] is not None and c["refer_to"].startswith(f"<sip:sales@127.0.0.1:{queue_port}")
    assert c["transferred_code"] == 200
    records = server.records(expect=2)
    (resumed,) = [r for r in records if r["call"]["worker_no"] == 2]
    plays = [e["text"] for e in resumed["events"] if e["kind"] == "play"]
    assert plays[0] == "Sorry, I lost you for a moment."
    assert plays[1].startswith("Say sales or support")  # the menu again, where the caller was
    assert plays[-1] == "Transferring you to sales."
    assert "1" in resumed["digits"]
    return resumed


def test_a_call_worker_killed_during_the_menu_is_replaced_and_the_call_goes_on(
    voicebot, tmp_path: Path
) -> None:
    c, server, queue_port = _menu_call(voicebot, tmp_path, signal.SIGKILL)
    _check_resumed(c, server, queue_port)
    assert re.search(r"call\.worker_died .*action=resume", server.log())
    assert "voicebot_call_worker_replacements_total 1.0" in server.metrics()


def test_a_stopped_call_worker_is_noticed_within_two_seconds_and_replaced(voicebot, tmp_path: Path) -> None:
    c, server, queue_port = _menu_call(voicebot, tmp_path, signal.SIGSTOP)
    _check_resumed(c, server, queue_port)
    died = re.search(r"call\.worker_died .*why='no message for ([\d.]+) s", server.log())
    assert died is not None and float(died.group(1)) <= 2.5


BOOKING = """\
id: booking
version: 1
integrations:
  api: {{base_url: "{base}", timeout_s: 10, retries: 0}}
steps:
  hello:
    say: Let me book that for you.
  book:
    tool: {{integration: api, method: {method}, path: /book{safe}, result: {{ref: ref}}, on_error: sorry}}
  done:
    hangup: Booked, your reference is {{ref}}.
  sorry:
    hangup: Sorry, I could not book that. Please call again.
"""


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_tool_call_in_flight_when_the_worker_dies_is_not_repeated_blindly(
    voicebot, tmp_path: Path, method: str
) -> None:
    """A POST that may have booked is never sent again: the new worker takes the step's error path
    and says so. A GET (safe to retry) is sent again with the same Idempotency-Key."""
    # the backend holds each request 3 s: the worker is killed while the tool call is in flight
    with JsonApi(lambda _: Response({"ref": "AB12"}, delay_s=3.0)) as backend:
        base = f"{backend.url}/api"
        plan = tmp_path / "booking.yaml"
        plan.write_text(BOOKING.format(base=base, method=method, safe=""))
        server = voicebot(
            VOICEBOT_CALL__LOGIC="dialplan",
            VOICEBOT_ROUTES=json.dumps([{"match": "*", "dialplan": str(plan)}]),
            VOICEBOT_TOOLS_ALLOW=json.dumps([base]),
        )
        caller = call_bot(tmp_path, server.port, "--duration", "20")
        pid = _worker_pid(server)
        assert backend.arrived.wait(10), "the tool call never reached the backend"
        os.kill(pid, signal.SIGKILL)
        c = caller.result(timeout=40)
        assert c["disconnected_by_remote"]  # the bot finished the call itself
        (resumed,) = [r for r in server.records(expect=2) if r["call"]["worker_no"] == 2]
        plays = [e["text"] for e in resumed["events"] if e["kind"] == "play"]
        if method == "POST":
            assert len(backend.seen) == 1, backend.seen  # never executed twice
            assert plays[-1] == "Sorry, I could not book that. Please call again."
            assert any(e["kind"] == "tool_interrupted" for e in resumed["events"])
        else:
            time.sleep(0.5)
            keys = [r.headers.get("Idempotency-Key", "") for r in backend.seen]
            assert len(keys) == 2 and keys[0] == keys[1] != ""
            assert plays[-1] == "Booked, your reference is AB12."


def test_a_recogniser_that_fails_gives_the_reprompt_not_silence(voicebot, tmp_path: Path) -> None:
    """Every decode fails (fault drill): the caller who said "sales" hears the menu's no-match
    reprompt, and keys still work afterwards."""
    from support.speech import spoken_wav

    queue_port = free_port()
    queues = {q: f"sip:{q}@127.0.0.1:{queue_port}" for q in ("sales", "support")}
    server = voicebot(
        VOICEBOT_CALL__LOGIC="dialplan",
        VOICEBOT_ASR__BACKEND="faster-whisper",
        VOICEBOT_ASR__INJECT_FAILURES="1",
        VOICEBOT_WORKERS__CALL_POOL_SIZE="1",
        VOICEBOT_QUEUES=json.dumps(queues),
    )
    utterance = tmp_path / "sales.wav"
    spoken_wav(utterance, "Sales, please.")
    queue = queue_peer(tmp_path, queue_port, "--hold", "1", "--duration", "40", "--max-calls", "1")
    caller = call_bot(
        tmp_path,
        server.port,
        "--play",
        str(utterance),
        "--play-at",
        "1.0",
        "--dtmf",
        "1@9",
        "--duration",
        "25",
    )
    c = caller.result(timeout=60)
    queue.result(timeout=60)
    (rec,) = server.records(expect=1)
    kinds = [e["kind"] for e in rec["events"]]
    assert "asr_failed" in kinds and "asr_unrecognized" in kinds
    ended = next(e for e in rec["events"] if e["kind"] == "speech_ended")
    reprompt = next(
        e for e in rec["events"] if e["kind"] == "play" and e["text"].startswith("Sorry, I did not")
    )
    assert reprompt["t"] > ended["t"]  # said after the caller's turn, not on a no-input timeout
    assert c["transferred_code"] == 200  # and the call went on: keys still work
    # The operator sees it: the node's error counter for the stage.
    assert re.search(r'^voicebot_stage_errors_total\{stage="asr"\} [1-9]', server.metrics(), re.M)


def test_a_step_that_kills_every_worker_is_given_up_politely(voicebot, tmp_path: Path) -> None:
    """Two workers die at the same step (no progress in between): the third does not try again; the
    caller hears an apology and the bot hangs up (the example plan has no fallback queue)."""
    server = voicebot(VOICEBOT_CALL__LOGIC="dialplan")
    caller = call_bot(tmp_path, server.port, "--duration", "30")
    os.kill(_worker_pid(server), signal.SIGKILL)
    (line,) = server.wait_log(r"call\.worker_replaced", count=1)
    second = int(re.search(r"worker_pid=(\d+)", line).group(1))  # type: ignore[union-attr]
    os.kill(second, signal.SIGKILL)
    c = caller.result(timeout=60)
    assert c["disconnected_by_remote"]
    records = server.records(expect=1)
    (last,) = [r for r in records if r["call"]["worker_no"] == 3]
    assert last["call"]["deaths"] == 2
    kinds = [e["kind"] for e in last["events"]]
    assert "resume_gave_up" in kinds and "hangup_request" in kinds
    plays = [e["text"] for e in last["events"] if e["kind"] == "play"]
    assert plays == ["Sorry, we are having technical difficulties. Please call again later."]
