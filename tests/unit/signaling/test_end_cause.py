"""How a call ended: the reason people read and the label of voicebot_calls_total{ended_by}."""

from __future__ import annotations

from voicebot.signaling.call import CallLeg


def leg() -> CallLeg:
    return CallLeg("id", "sip-id", "alice", "100", "local", "example", invited_at=0.0)


def test_a_call_nothing_on_our_side_ended_was_ended_by_the_caller() -> None:
    assert leg().ended_by == "caller" and leg().end_reason == ""


def test_our_side_records_cause_and_reason_together() -> None:
    call = leg()
    call.ending("transfer", "transferred to sales")
    assert (call.ended_by, call.end_reason) == ("transfer", "transferred to sales")
