"""Real calls driven by the bundled example dialplan (what `make run` answers with)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.jsonapi import JsonApi, Request
from support.net import free_port
from support.peers import call_bot, queue_peer

pytestmark = pytest.mark.integration

# Measured numbers in the logs (timings, ports, pids, sizes) and the timestamps may contain a PIN's digits
# by chance ("prompts.warmed ms=1234" did once); they are dropped before the log is searched for it.
_MEASURED = re.compile(
    r"^\S*\d\d:\d\d:\d\d\.\d+Z? "  # timestamps (structlog and pjsip)
    r"|\b\w*(?:ms|_s|pid|port|index|frames_out|code|listen)=\S+"  # measured/assigned numbers
    r"|:\d+\b"  # host:port
)


def _pin_leaks(log: str, pin: str) -> list[str]:
    """Log lines that carry `pin` as a value of its own (not inside a hex pointer, tag, path or number)."""
    token = re.compile(rf"(?<![\w./:-]){pin}(?!\w)")
    return [line for line in log.splitlines() if token.search(_MEASURED.sub(" ", line))]


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


def _billing(request: Request) -> dict[str, object]:
    """A billing system: verifies account 47192 with PIN 1234, answers balances."""
    if request.path.endswith("/verify"):
        return {"verified": request.body == {"pin": "1234"}, "customer": {"first_name": "Dana"}}
    return {"balance": {"amount": 42.5, "due_date": "December 1"}}


def test_billing_verifies_by_keypad_then_escalates_with_context(voicebot, tmp_path: Path) -> None:
    """account + PIN by RFC 4733 keys -> the subflow's tool call to a real HTTP server -> balance read
    out -> the caller asks for a person (key 0) -> REFER to billing with X-Voicebot-Account; the PIN
    never reaches the logs or the call record."""
    from support.peers import REPO

    http = JsonApi(_billing, "billing-api")
    base = f"{http.url}/api"
    plans = tmp_path / "plans"
    (plans / "subflows").mkdir(parents=True)
    for rel in ("billing.yaml", "subflows/verify_account.yaml"):
        text = (REPO / "dialplans" / rel).read_text()
        (plans / rel).write_text(text.replace("https://billing.example.internal/api", base))
    queue_port = free_port()
    server = voicebot(
        VOICEBOT_CALL__LOGIC="dialplan",
        VOICEBOT_ROUTES=json.dumps([{"match": "*", "dialplan": str(plans / "billing.yaml")}]),
        VOICEBOT_QUEUES=json.dumps({"billing": f"sip:billing@127.0.0.1:{queue_port}"}),
        VOICEBOT_TOOLS_ALLOW=json.dumps([base]),
        BILLING_TOKEN="s3cret-token",
    )
    queue = queue_peer(tmp_path, queue_port, "--hold", "1", "--duration", "40", "--max-calls", "1")
    # Welcome + account prompt take ~4 s; keys go in while (or after) each prompt plays.
    caller = call_bot(tmp_path, server.port, "--dtmf", "47192@4", "1234@8", "0@17", "--duration", "35")
    c, q = caller.result(), queue.result()
    http.stop()
    assert c["transferred_code"] == 200
    (invite,) = [e for e in q["events"] if e["kind"] == "invite"]
    assert "X-Voicebot-Account: 47192" in invite["headers"]
    assert "X-Voicebot-Verified: yes" in invite["headers"]
    assert "X-Voicebot-Reason: billing: caller asked" in invite["headers"]
    assert http.paths == ["/api/accounts/47192/verify", "/api/accounts/47192/balance"]
    assert http.seen[0].headers["Authorization"] == "Bearer s3cret-token"
    assert http.seen[0].body == {"pin": "1234"}
    (rec,) = server.records(expect=1)
    plays = [e["text"] for e in rec["events"] if e["kind"] == "play"]
    assert "Thanks Dana. Your balance is 42.5 dollars, due on December 1." in plays
    keyed = "".join(e["digit"] for e in rec["events"] if e["kind"] == "dtmf")
    assert keyed.startswith("47192") and "1234" not in keyed and "<redacted>" in keyed
    log = server.log()
    assert "s3cret-token" not in log
    assert _pin_leaks(log, "1234") == []
