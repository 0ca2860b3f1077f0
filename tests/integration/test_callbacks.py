"""Callbacks and outbound calls over real SIP: a caller books a call back at a time it keys in, the
booking waits on the durable queue, and at that time the bot's call arrives at a test UA (a pjsua2
peer on the trunk's `dial` address) and runs the plan's callback entry; `voicebot call` places calls
within the trunk's concurrency limit and refuses premium-rate numbers."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.net import free_port
from support.peers import REPO, call_bot, queue_peer

pytestmark = pytest.mark.integration

CALLEE = "+12125550123"
PLAN = """\
id: cbtest
version: 1
steps:
  number:
    collect:
      prompt: Key the number to call back then hash.
      into: callback_number
      kind: digits
      min_digits: 10
      max_digits: 15
  time:
    collect: {prompt: Key the time as four digits., into: callback_time, kind: time}
  book:
    callback:
      number: "{callback_number}"
      time: "{callback_time}"
      entry: called_back
      keep: [callback_number]
      confirm: We will call {callback_number} at {callback_time}. Press 1 to confirm.
      on_error: sorry
  booked:
    hangup: Booked for {callback_at}. Goodbye.
  sorry:
    hangup: "Sorry, I cannot book that: {callback_error}."
  called_back:
    say: Hello, this is the call back you booked.
  bye:
    hangup: Goodbye.
"""


def outbound_env(tmp_path: Path, callee_port: int, max_calls: int = 2) -> dict[str, str]:
    plan = tmp_path / "cbtest.yaml"
    plan.write_text(PLAN)
    trunk = {
        "name": "carrier",
        "allow": ["127.0.0.0/8"],
        "dial": f"sip:{{number}}@127.0.0.1:{callee_port}",
        "caller_id": "+12125550100",
        "max_outbound_calls": max_calls,
    }
    return {
        "VOICEBOT_CALL__LOGIC": "dialplan",
        "VOICEBOT_ROUTES": json.dumps([{"match": "*", "dialplan": str(plan)}]),
        "VOICEBOT_TRUNKS": json.dumps([trunk]),
        # CI runs at any hour; calling hours are tested on their own (tests/unit/outbound)
        "VOICEBOT_OUTBOUND": json.dumps(
            {"enabled": True, "calling_hours": "00:00-24:00", "ring_timeout_s": 10}
        ),
        "VOICEBOT_WORKERS__CALLS_PER_UA": "2",
    }


def invites(peer: dict) -> list[dict]:
    return [e for e in peer["events"] if e["kind"] == "invite"]


def test_a_booked_callback_rings_the_number_at_the_chosen_time_and_runs_its_entry(
    voicebot, tmp_path: Path
) -> None:
    callee_port = free_port()
    server = voicebot(**outbound_env(tmp_path, callee_port))
    callee = queue_peer(
        tmp_path, callee_port, "--hold", "5", "--duration", "150", "--max-calls", "1",
        "--record-dir", str(tmp_path),
    )  # fmt: skip
    # A premium-rate number is refused before anything is promised: said, not booked.
    refused = call_bot(
        tmp_path,
        server.port,
        "--dtmf",
        "9005551234#@1.5",
        "0930@3",
        "1@5",
        "--duration",
        "12",
        name="premium",
    )
    # The chosen time: the next full minute at least 25 s from now (local time, as callers say it).
    now = dt.datetime.now().astimezone()
    chosen = (now + dt.timedelta(seconds=25 + 60)).replace(second=0, microsecond=0)
    if (chosen - now).total_seconds() > 85:
        chosen -= dt.timedelta(minutes=1)
    assert refused.result()["disconnected_by_remote"]
    caller = call_bot(
        tmp_path, server.port, "--dtmf", "2125550123#@1.5", f"{chosen:%H%M}@3.5", "1@6", "--duration", "14",
    )  # fmt: skip
    assert caller.result()["disconnected_by_remote"]
    inbound = server.records(expect=2)
    sorry, booked = sorted(inbound, key=lambda r: r["call"]["answered_at"])
    assert next(e for e in sorry["events"] if e["kind"] == "callback")["ok"] is False
    assert "premium-rate" in [e["text"] for e in sorry["events"] if e["kind"] == "play"][-1]
    (note,) = [e for e in booked["events"] if e["kind"] == "callback"]
    assert note["ok"] and note["at"] == f"{chosen:%Y-%m-%d %H:%M}"
    assert [e["text"] for e in booked["events"] if e["kind"] == "play"][-1].startswith("Booked for")

    # The call back: nothing before the chosen time, then the INVITE through the trunk.
    result = callee.result(timeout=150)
    (invite,) = invites(result)
    assert invite["request_line"].startswith(f"INVITE sip:{CALLEE}@127.0.0.1:{callee_port}")
    assert any("+12125550100" in h for h in invite["headers"] if h.lower().startswith("from:"))
    late = invite["wall"] - chosen.timestamp()
    assert 0 <= late < 10, f"the call back rang {late:.1f} s after the chosen time"
    (heard,) = result["recording_rms"]
    assert heard > 300, "the callee heard the bot"
    records = server.records(expect=3)
    (out,) = [r for r in records if r["call"]["direction"] == "outbound"]
    assert (out["call"]["caller"], out["call"]["entry"]) == (CALLEE, "called_back")
    assert (
        next(e["text"] for e in out["events"] if e["kind"] == "play")
        == "Hello, this is the call back you booked."
    )
    assert {"entry": "called_back", "kept": ["callback_number"]}.items() <= next(
        e for e in out["events"] if e["kind"] == "outbound"
    ).items()
    server.wait_log(r"jobs\.done.*kind=outbound")


def _voicebot_call(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "call", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_voicebot_call_places_calls_one_at_a_time_on_a_one_call_trunk_and_refuses_premium(
    voicebot, tmp_path: Path
) -> None:
    callee_port = free_port()
    server = voicebot(**outbound_env(tmp_path, callee_port, max_calls=1))
    callee = queue_peer(tmp_path, callee_port, "--hold", "3", "--duration", "60", "--max-calls", "2")
    premium = _voicebot_call(server.env, "+19005551234", "--dialplan", str(tmp_path / "cbtest.yaml"))
    assert premium.returncode == 2
    assert "premium-rate number" in premium.stderr
    for _ in range(2):
        booked = _voicebot_call(
            server.env, CALLEE, "--dialplan", str(tmp_path / "cbtest.yaml"), "--entry", "called_back"
        )
        assert booked.returncode == 0, booked.stderr
        assert "booked call job" in booked.stdout and "********0123" in booked.stdout
    result = callee.result(timeout=60)
    first, second = invites(result)
    # The trunk takes one call at a time: the second rings only after the first (held 3 s) ended.
    assert second["t"] - first["t"] >= 3.0
    records = server.records(expect=2, timeout=20)
    assert [r["call"]["direction"] for r in records] == ["outbound", "outbound"]
    server.wait_log(r"jobs\.deferred.*trunk carrier is at its limit")


def test_two_booked_calls_ring_together_on_a_two_call_trunk(voicebot, tmp_path: Path) -> None:
    """The node dials in lanes: a call that rings (6 s here, before it is answered) does not hold up
    the next booked one while its trunk has room (1 call per second)."""
    callee_port = free_port()
    server = voicebot(**outbound_env(tmp_path, callee_port, max_calls=2))
    callee = queue_peer(
        tmp_path, callee_port, "--ring-s", "6", "--hold", "3", "--duration", "40", "--max-calls", "2"
    )
    for _ in range(2):
        booked = _voicebot_call(
            server.env, CALLEE, "--dialplan", str(tmp_path / "cbtest.yaml"), "--entry", "called_back"
        )
        assert booked.returncode == 0, booked.stderr
    first, second = invites(callee.result(timeout=60))
    assert second["t"] - first["t"] < 5.0, "the second rang while the first was still ringing"
    assert len(server.records(expect=2, timeout=20)) == 2


def test_behind_the_nodes_edge_a_placed_call_goes_out_through_it(voicebot, tmp_path: Path) -> None:
    """With 2 UA workers (listening on loopback behind this node's Kamailio edge) the INVITE leaves
    through the edge, which record-routes it (the dialog's BYE passes it too)."""
    from support.net import free_port_block

    callee_port = free_port()
    env = outbound_env(tmp_path, callee_port)
    env.pop("VOICEBOT_WORKERS__CALLS_PER_UA")
    server = voicebot(
        **env, VOICEBOT_WORKERS__UA_WORKERS="2", VOICEBOT_WORKERS__UA_BASE_PORT=str(free_port_block(2))
    )
    callee = queue_peer(tmp_path, callee_port, "--hold", "2", "--duration", "40", "--max-calls", "1")
    booked = _voicebot_call(
        server.env, CALLEE, "--dialplan", str(tmp_path / "cbtest.yaml"), "--entry", "called_back"
    )
    assert booked.returncode == 0, booked.stderr
    (invite,) = invites(callee.result(timeout=40))
    headers = [h.lower() for h in invite["headers"]]
    assert any(h.startswith("record-route:") and f":{server.port}" in h for h in headers), headers
    assert sum(h.startswith("via:") for h in headers) == 2  # the UA worker's and the edge's
    assert not [h for h in headers if h.startswith("route:")], "the preloaded route to the edge ends there"
    kamailio_log = (server.workdir / "run" / "edge" / "kamailio.log").read_text(errors="replace")
    assert f"edge.outbound dest=127.0.0.1:{callee_port}" in kamailio_log
    (rec,) = server.records(expect=1, timeout=20)
    assert rec["call"]["direction"] == "outbound"
    assert (
        next(e["text"] for e in rec["events"] if e["kind"] == "play")
        == "Hello, this is the call back you booked."
    )
