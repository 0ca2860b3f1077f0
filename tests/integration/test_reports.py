"""`voicebot calls list|show` and `voicebot report` on a database filled by real calls to the example
dialplan: each call's outcome and failure class as the classification rules give them, the events
and turn waterfall of one call, and the report's rates and latency percentiles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.net import free_port
from support.peers import call_bot, queue_peer

pytestmark = pytest.mark.integration


PRICES = {"VOICEBOT_COSTS__TRUNK_MINUTE": '{"*": 0.01}', "VOICEBOT_COSTS__TRANSFER": "0.05"}


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicebot.cli", *args, "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **PRICES},
    )


def cli_json(url: str, *args: str) -> Any:
    run = cli(url, *args, "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_calls_and_report_on_real_calls(voicebot, tmp_path: Path) -> None:
    queue_port = free_port()
    queues = {"sales": f"sip:sales@127.0.0.1:{queue_port}", "support": f"sip:support@127.0.0.1:{queue_port}"}
    server = voicebot(VOICEBOT_CALL__LOGIC="dialplan", VOICEBOT_QUEUES=json.dumps(queues))
    url = server.env["VOICEBOT_DATABASE__URL"]
    queue = queue_peer(tmp_path, queue_port, "--hold", "1", "--duration", "30", "--max-calls", "1")
    callers = {
        # key 2: handed to support, as planned
        "support": call_bot(tmp_path, server.port, "--dtmf", "2@1.5", "--duration", "15", name="support"),
        # hash: the plan says goodbye and hangs up
        "goodbye": call_bot(tmp_path, server.port, "--dtmf", "#@1.5", "--duration", "15", name="goodbye"),
        # two keys the menu has no option for, then hash
        "wrong_keys": call_bot(
            tmp_path, server.port, "--dtmf", "9@1.5", "8@5", "#@9", "--duration", "20", name="wrong_keys"
        ),
        # the caller hangs up in the middle of the menu prompt
        "hung_up": call_bot(tmp_path, server.port, "--duration", "2.5", name="hung_up"),
    }
    for c in callers.values():
        c.result()
    queue.result()

    listed = []
    for _ in range(100):  # the records are written when each call's worker has finished
        listed = cli_json(url, "calls", "list")
        if len(listed) == 4:
            break
        time.sleep(0.2)
    assert len(listed) == 4, listed
    by_id = {c["id"]: c for c in listed}
    found = {}
    for call_id in by_id:
        shown = cli_json(url, "calls", "show", call_id[:10])
        keys = "".join(e.get("digit", "") for e in shown["events"] if e["kind"] == "dtmf")
        found[keys] = shown
    verdicts = {k: (v["outcome"], v["failure_class"]) for k, v in found.items()}
    assert verdicts == {
        "2": ("escalated", "completed"),
        "#": ("completed", "completed"),
        "98#": ("completed", "unsupported_request"),
        "": ("abandoned", "user_disconnection"),
    }, verdicts
    wrong = found["98#"]
    assert [e["count"] for e in wrong["events"] if e["kind"] == "no_match"] == [1, 2]
    assert wrong["dialplan_version"].startswith("1-")  # version 1 of example.yaml, with its hash
    # the steps the call stopped at (the greeting is said on the way to the menu)
    assert [e["step"] for e in found["2"]["events"] if e["kind"] == "step"] == ["main_menu", "to_support"]

    # filters
    assert [c["failure_class"] for c in cli_json(url, "calls", "list", "--outcome", "abandoned")] == [
        "user_disconnection"
    ]
    assert len(cli_json(url, "calls", "list", "--failure-class", "completed", "--since", "1h")) == 2
    assert cli_json(url, "calls", "list", "--dialplan", "voicemail.yaml") == []

    # the text page: the classification's reason and the greeting's time
    page = cli(url, "calls", "show", wrong["id"])
    assert page.returncode == 0, page.stderr
    assert "class unsupported_request: 2 clear answers matched nothing at step main_menu" in page.stdout
    assert "greeting: first audio" in page.stdout

    report = cli_json(url, "report", "--since", "1h")
    total = report["total"]
    assert total["calls"] == 4 and total["completion"] == 0.5 and total["escalation"] == 0.25
    assert total["failure_classes"] == {"completed": 2, "unsupported_request": 1, "user_disconnection": 1}
    greeting = total["stages_ms"]["greeting"]
    assert greeting["n"] == 4 and 0 < greeting["p50"] <= greeting["p95"] <= greeting["p99"] < 2000
    (example,) = report["by_version"]
    assert example["dialplan"] == "example.yaml" and example["version"] == wrong["dialplan_version"]
    # costs: each call is under a minute (0.01 each), one transfer (0.05); 2 completed outcomes
    cost = total["cost"]
    assert cost["parts"]["trunk"] == pytest.approx(0.04) and cost["parts"]["transfer"] == pytest.approx(0.05)
    assert cost["per_completed"] == pytest.approx(cost["total"] / 2) and report["currency"] == "USD"
    assert found["2"]["cost"]["transfer"] == 0.05 and found[""]["cost"]["transfer"] == 0.0
    text = cli(url, "report", "--since", "1h")
    assert "completion 50%" in text.stdout and "greeting" in text.stdout

    missing = cli(url, "calls", "show", "ffffffffff")
    assert missing.returncode == 2 and "no call" in missing.stderr
