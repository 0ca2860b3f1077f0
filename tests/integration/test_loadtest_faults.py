"""`voicebot loadtest` with what conversation tests cannot script: a recorded (WAV) turn, a barge-in
over the bot's prompt with its stop time measured, RTP loss on the callers' side, and a fault proxy
in front of the bot's tool backend that fails every request; against `voicebot run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.jsonapi import JsonApi
from support.net import free_port

from voicebot.loadtest import voice
from voicebot.media.audiofile import wav_bytes

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def loadtest(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "loadtest", target, *args],
        cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def test_a_recorded_turn_and_a_barge_in_under_rtp_loss(voicebot: Any, tmp_path: Path) -> None:
    server = voicebot(VOICEBOT_CALL__LOGIC="dialplan", VOICEBOT_ASR__BACKEND="faster-whisper")
    script = tmp_path / "callers.yaml"
    (tmp_path / "rec").mkdir()
    # a recording at 22.05 kHz (piper's joe; the bundled espeak recordings are known to decode badly
    # with whisper-base, tests/unit/asr/test_whisper_asr.py), played at the call's rate
    spoken = voice.speech("I would like to talk to someone in sales, please.", 22050)
    (tmp_path / "rec" / "sales.wav").write_bytes(wav_bytes(spoken, 22050))
    script.write_text(
        "callers:\n"
        "  - name: talks over the menu\n"
        "    turns: [{barge: support please}]\n"
        "    expect: {transfer: support}\n"
        "  - name: a recorded request\n"
        "    turns: [{wav: rec/sales.wav}]\n"
        "    expect: {transfer: sales}\n"
    )
    slo = tmp_path / "slo.yaml"
    slo.write_text("outcome_rate_min: 1.0\nbarge_stop_ms_p95_max: 2000\n")
    out = tmp_path / "results.json"
    done = loadtest(
        f"sip:100@127.0.0.1:{server.port}", "--tests", str(script), "--concurrency", "2",
        "--rtp-loss", "2", "--slo", str(slo), "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    calls = {c["script"]: c for c in results["calls"]}
    assert all(c["ok"] for c in calls.values()), calls
    barged = calls["talks over the menu"]
    assert barged["barge_ins"] == 1 and len(barged["barge_stops_ms"]) == 1, barged
    assert 0 < barged["barge_stops_ms"][0] < 2000, barged
    assert "sales" in calls["a recorded request"]["target"]
    summary = results["summary"]
    assert summary["faults"]["rtp_loss_pct"] == 2 and summary["barge_ins"] == 1
    assert "barge-in stop ms" in done.stdout and "RTP loss 2% each way" in done.stdout
    # the bot noted the barge-in where the caller began talking over it
    records = server.records(expect=2, timeout=20)
    assert any(e["kind"] == "barge_in" for r in records for e in r["events"]), records


PLAN = """id: orders
version: 1
integrations:
  orders: {{base_url: "{base}", timeout_s: 2, retries: 1}}
steps:
  hello:
    say: Let me check your order.
  lookup:
    tool: {{integration: orders, path: /orders/1, result: {{ships: order.ships}}, on_error: down}}
  ships:
    hangup: Your order ships on {{ships}}. Goodbye.
  down:
    hangup: Sorry, the order system is down. Goodbye.
"""


def test_a_failing_tool_backend_behind_the_fault_proxy(voicebot: Any, tmp_path: Path) -> None:
    backend = JsonApi(lambda _: {"order": {"ships": "Monday"}}, "orders-api")
    proxy = f"127.0.0.1:{free_port()}"
    plan = tmp_path / "orders.yaml"
    plan.write_text(PLAN.format(base=f"http://{proxy}/api"))
    server = voicebot(
        VOICEBOT_CALL__LOGIC="dialplan",
        VOICEBOT_ROUTES=json.dumps([{"match": "*", "dialplan": str(plan)}]),
        VOICEBOT_TOOLS_ALLOW=json.dumps([f"http://{proxy}/api"]),
    )
    script = tmp_path / "callers.yaml"
    script.write_text("callers:\n  - name: listens\n    turns: []\n    expect: {hangup: true}\n")
    out = tmp_path / "results.json"
    upstream = backend.url
    marker = tmp_path / "restored"
    done = loadtest(
        f"sip:100@127.0.0.1:{server.port}", "--tests", str(script), "--concurrency", "2",
        "--fault-proxy", f"{proxy}={upstream},status=503,rate=1.0,delay_s=0.2",
        "--at", f"600:touch {marker}",  # due after the run: run at its end all the same
        "--out", str(out),
    )  # fmt: skip
    backend.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    assert [c["outcome"] for c in results["calls"]] == ["hangup", "hangup"]
    (proxied,) = results["summary"]["faults"]["proxies"]
    # every attempt failed (the integration retries a 5xx once), none reached the backend
    assert proxied["requests"] == proxied["failed"] == proxied["delayed"] == 4, proxied
    assert proxied["forwarded"] == 0 and backend.seen == []
    assert marker.exists() and results["summary"]["faults"]["commands"][0]["exit"] == 0
    records = server.records(expect=2, timeout=20)
    plays = [e.get("text", "") for r in records for e in r["events"] if e["kind"] == "play"]
    assert plays.count("Sorry, the order system is down. Goodbye.") == 2, plays


def test_the_database_stopped_in_the_middle_of_a_run(voicebot: Any, tmp_path: Path) -> None:
    """`--at` stops the bot's PostgreSQL as the run starts and starts it again at the end: every call
    is still answered and ends as expected, and their records reach the database once it is back."""
    from pg_server import PostgresServer

    pg = PostgresServer().start()
    try:
        url = pg.create_database("loadtest")
        server = voicebot(VOICEBOT_CALL__LOGIC="dialplan", VOICEBOT_DATABASE__URL=url)
        script = tmp_path / "callers.yaml"
        script.write_text(
            "callers:\n  - name: goodbye\n    turns: [{keys: '#'}]\n    expect: {hangup: true}\n"
        )
        out = tmp_path / "results.json"
        done = loadtest(
            f"sip:100@127.0.0.1:{server.port}", "--tests", str(script), "--concurrency", "2", "--calls", "4",
            "--at", "0:" + pg.shell_command("halt"), "--at", "600:" + pg.shell_command("resume"),
            "--out", str(out),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        results = json.loads(out.read_text())
        assert results["summary"]["as_expected"] == 4, results["calls"]
        commands = results["summary"]["faults"]["commands"]
        assert [c["exit"] for c in commands] == [0, 0], commands
        server.wait_log(r"call\.spooled", count=1, timeout=30)  # kept on disk while the database was away
        kept: list[Any] = []
        for _ in range(60):  # written by the supervisor's flusher once the database answers again
            listed = subprocess.run(
                [sys.executable, "-m", "voicebot.cli", "calls", "list", "--url", url, "--json"],
                cwd=REPO, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            kept = json.loads(listed.stdout) if listed.returncode == 0 else []
            if len(kept) == 4:
                break
            time.sleep(1)
        assert len(kept) == 4 and {c["outcome"] for c in kept} == {"completed"}, kept
    finally:
        pg.stop()


def test_an_llm_answering_429_through_the_fault_proxy(voicebot: Any, tmp_path: Path) -> None:
    """The assistant's LLM behind a fault proxy that rate-limits every request (429): the callers are
    handed to a person, as the plan says when its LLM fails, and the bot's records say why."""
    from support.scripted_llm import Reply, serve

    proxy = f"127.0.0.1:{free_port()}"
    with serve(lambda messages, tools: Reply(text="We are open nine to six.")) as llm:
        server = voicebot(
            VOICEBOT_CALL__LOGIC="dialplan",
            VOICEBOT_ROUTES=json.dumps(
                [{"match": "*", "dialplan": str(REPO / "dialplans" / "assistant.yaml")}]
            ),
            VOICEBOT_QUEUES=json.dumps({"support": f"sip:support@127.0.0.1:{free_port()}"}),
            VOICEBOT_LLM__MODEL="openai/scripted",
            VOICEBOT_LLM__API_BASE=f"http://{proxy}/v1",
            VOICEBOT_LLM__API_KEY_ENV="",
            VOICEBOT_LLM__FIRST_TOKEN_TIMEOUT_S="3",
        )
        script = tmp_path / "callers.yaml"
        script.write_text("callers:\n  - name: listens\n    turns: []\n    expect: {transfer: support}\n")
        out = tmp_path / "results.json"
        done = loadtest(
            f"sip:100@127.0.0.1:{server.port}", "--tests", str(script), "--concurrency", "2",
            "--fault-proxy", f"{proxy}=http://127.0.0.1:{llm.port},status=429,rate=1.0",
            "--out", str(out),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr + server.log()[-3000:]
        assert llm.requests == []  # every request was refused before it reached the model
    results = json.loads(out.read_text())
    (proxied,) = results["summary"]["faults"]["proxies"]
    assert proxied["failed"] >= 2 and proxied["forwarded"] == 0, proxied
    records = server.records(expect=2, timeout=20)
    failures = [e for r in records for e in r["events"] if e["kind"] == "llm_failed"]
    assert len(failures) >= 2 and all(
        "429" in e["error"] or "rate" in e["error"].lower() for e in failures
    ), failures
