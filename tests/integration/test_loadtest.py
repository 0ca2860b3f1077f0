"""`voicebot loadtest` against `voicebot run` (the example dialplan): two scripted callers at once,
taken from the example's conversation tests, end as those tests say (a transfer to support; a busy
queue, back to the menu, goodbye), with the bot's greeting and turn gaps measured from the caller's
side and an SLO file checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_two_scripted_callers_end_as_the_example_tests_say_and_meet_the_slo(
    voicebot: Any, tmp_path: Path
) -> None:
    server = voicebot(VOICEBOT_CALL__LOGIC="dialplan")
    slo = tmp_path / "slo.yaml"
    slo.write_text("answer_rate_min: 1.0\noutcome_rate_min: 1.0\ngreeting_ms_p95_max: 5000\n")
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "voicebot.cli", "loadtest", f"sip:100@127.0.0.1:{server.port}",
            "--tests", str(REPO / "dialplans" / "example.test.yaml"),
            "--test", "support by key", "--test", "queue busy, back to the menu, then goodbye",
            "--concurrency", "2", "--slo", str(slo), "--out", str(out),
        ],
        cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    calls = {c["script"]: c for c in results["calls"]}
    support = calls["support by key"]
    assert support["ok"] and support["outcome"] == "transfer" and "support" in support["target"], support
    busy = calls["queue busy, back to the menu, then goodbye"]
    assert busy["ok"] and busy["outcome"] == "hangup" and "sales" in busy["target"], busy
    assert all(c["greeting_ms"] is not None and 0 < c["greeting_ms"] < 5000 for c in calls.values())
    assert busy["turn_gaps_ms"] and all(0 < g < 5000 for g in busy["turn_gaps_ms"]), busy
    summary = results["summary"]
    assert (summary["calls"], summary["answered"], summary["as_expected"]) == (2, 2, 2)
    assert results["slo_missed"] == [] and "greeting ms" in done.stdout
    records = server.records(expect=2, timeout=20)
    assert len(records) == 2  # the bot kept both calls, as it does any


def test_spoken_turns_reach_the_bots_recogniser_and_steer_the_call(voicebot: Any, tmp_path: Path) -> None:
    """The callers speak (piper's joe voice, unlike the bot's hibari) to the bot's faster-whisper:
    "someone in sales, please" is transferred to sales; two unknown requests and silence end in
    the bot's goodbye."""
    server = voicebot(VOICEBOT_CALL__LOGIC="dialplan", VOICEBOT_ASR__BACKEND="faster-whisper")
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "voicebot.cli", "loadtest", f"sip:100@127.0.0.1:{server.port}",
            "--test", "sales by voice", "--test", "not understood twice, then silence ends the call",
            "--concurrency", "2", "--out", str(out),
        ],
        cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    calls = {c["script"]: c for c in json.loads(out.read_text())["calls"]}
    sales = calls["sales by voice"]
    assert sales["ok"] and sales["outcome"] == "transfer" and "sales" in sales["target"], sales
    unknown = calls["not understood twice, then silence ends the call"]
    assert unknown["ok"] and unknown["outcome"] == "hangup", unknown
    assert len(sales["turn_gaps_ms"]) == 1 and len(unknown["turn_gaps_ms"]) == 2
    records = server.records(expect=2, timeout=20)
    spoken = [e for r in records for e in r["events"] if e["kind"] == "transcript"]
    assert len(spoken) == 3, spoken  # every caller utterance was heard and recognised


def test_a_burst_of_callers_on_top_of_the_level_is_answered_and_counted(
    voicebot: Any, tmp_path: Path
) -> None:
    """`--burst 3@2`: three more callers start together 2 s into a one-caller run (in a process of
    their own); all four calls are answered and end as the example's test says, and the summary
    keeps the burst apart."""
    server = voicebot(VOICEBOT_CALL__LOGIC="dialplan")
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "voicebot.cli", "loadtest", f"sip:100@127.0.0.1:{server.port}",
            "--tests", str(REPO / "dialplans" / "example.test.yaml"), "--test", "support by key",
            "--concurrency", "1", "--burst", "3@2", "--out", str(out),
        ],
        cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    summary = results["summary"]
    assert (summary["calls"], summary["answered"], summary["as_expected"]) == (4, 4, 4), summary
    assert summary["burst"] == {"calls": 3, "answered": 3, "as_expected": 3}, summary["burst"]
    assert sum(c["burst"] for c in results["calls"]) == 3
    assert "burst         3 calls at once: answered 3, as expected 3" in done.stdout
    records = server.records(expect=4, timeout=20)
    answered = sorted(r["call"]["answered_at"] for r in records)
    assert len(answered) == 4
    # the bot saw them so: one call, then three answered within a second of each other ~2 s later
    assert answered[3] - answered[1] < 1.0 and answered[1] - answered[0] > 1.0, answered
