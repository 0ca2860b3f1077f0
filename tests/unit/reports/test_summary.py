"""The report's figures and the call page's waterfall, from rows shaped like the database's."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from voicebot.reports import calls, summary
from voicebot.reports.summary import CallRow, percentile


def test_percentiles_are_nearest_rank() -> None:
    values = list(range(1, 101))
    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) is None


def turn(n: int, asr: int, decision: int, tts: int | None, out: int | None) -> dict[str, object]:
    return {
        "turn": n,
        "decided_by": "dialplan",
        "asr_final_ms": asr,
        "decision_ms": decision,
        "tts_first_audio_ms": tts,
        "reply_out_ms": out,
    }


def test_rates_classes_and_stages_per_version_and_in_all() -> None:
    rows = [
        CallRow("example.yaml", "1-aa", "escalated", "completed", [{"turn": 0, "greeting_ms": 40}]),
        CallRow("example.yaml", "1-aa", "completed", "completed", [turn(1, 300, 310, 400, 450)]),
        CallRow("example.yaml", "2-bb", "abandoned", "user_disconnection", [turn(1, 500, 520, None, None)]),
        CallRow("example.yaml", "2-bb", "completed", "unsupported_request", []),
    ]
    report = summary.summarise(rows)
    total = report["total"]
    assert total["calls"] == 4 and total["completion"] == 0.5 and total["escalation"] == 0.25
    assert total["failure_classes"] == {"completed": 2, "unsupported_request": 1, "user_disconnection": 1}
    assert list(total["stages_ms"]) == ["greeting", "asr_final", "decision", "tts_first_audio", "reply_out"]
    assert total["stages_ms"]["asr_final"] == {"p50": 300.0, "p95": 500.0, "p99": 500.0, "n": 2}
    assert total["stages_ms"]["reply_out"]["n"] == 1  # an abandoned turn has no reply time
    canary, stable = report["by_version"][1], report["by_version"][0]
    assert (stable["version"], stable["calls"], stable["completion"]) == ("1-aa", 2, 1.0)
    assert (canary["version"], canary["calls"], canary["completion"]) == ("2-bb", 2, 0.0)
    text = summary.render(report, "the last 24h")
    assert "example.yaml version 2-bb: 2 calls" in text and "completion 50%" in text


def test_an_empty_window_reports_zero_calls() -> None:
    report = summary.summarise([])
    assert report["total"]["calls"] == 0 and report["by_version"] == []
    assert "all calls: 0 calls" in summary.render(report, "the last 1h")


def test_the_waterfall_draws_each_stage_where_it_ends() -> None:
    lines = calls.waterfall(turn(3, 200, 400, 600, 800))
    assert lines[0].startswith("turn 3 (decided by dialplan)")
    bars = {line.split()[0]: line for line in lines[1:]}
    assert bars["reply_out"].rstrip().endswith("800")
    # each bar starts where the previous stage ended: reply_out's bar is the last quarter
    start = bars["reply_out"].index("#")
    assert bars["tts_first_audio"].index("#") < start and bars["reply_out"].count("#") == calls.WIDTH // 4
    missing = calls.waterfall(turn(4, 200, 300, None, None))
    assert missing[-1].split() == ["reply_out", "-"]


@pytest.mark.parametrize("transcript", [False, True])
def test_the_call_page_hides_what_the_caller_said_unless_asked(transcript: bool) -> None:
    t0 = dt.datetime(2026, 12, 3, 10, 0, 0)
    call = SimpleNamespace(
        id="abc123",
        started_at=t0,
        ended_at=t0 + dt.timedelta(seconds=9),
        node="n1",
        ua_worker=0,
        trunk="pbx",
        caller="+4930123",
        callee="100",
        dialplan="/srv/example.yaml",
        dialplan_version="1-aa",
        disposition="caller_hung_up",
        transfer_queue=None,
        end_reason="remote: BYE",
        outcome="abandoned",
        failure_class="user_disconnection",
    )
    events = [
        SimpleNamespace(kind="step", at=t0, data={"step": "menu"}),
        SimpleNamespace(kind="transcript", at=t0 + dt.timedelta(seconds=4), data={"text": "my pin is 1234"}),
        SimpleNamespace(kind="call_ended", at=t0 + dt.timedelta(seconds=9), data={"reason": "remote: BYE"}),
    ]
    page = calls.render_call(call, events, transcript=transcript)
    assert ("1234" in page) is transcript
    assert "class user_disconnection: the caller hung up before the end" in page
    assert "   4.00  transcript" in page
