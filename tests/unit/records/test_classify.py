"""Each failure-class rule on small event logs shaped like the records real calls leave, and the order
in which the rules decide."""

from __future__ import annotations

from typing import Any

import pytest

from voicebot.records import classify as c


def ev(kind: str, **data: Any) -> dict[str, Any]:
    return {"kind": kind, **data}


def heard(text: str, confidence: float = 0.9) -> dict[str, Any]:
    return ev("transcript", text=text, confidence=confidence)


START = [ev("plan", id="example", version=3, hash="ab12"), ev("step", step="menu")]
BYE = [ev("hangup_request", reason="completed"), ev("call_ended", reason="local: bot hung up")]
CALLER_LEFT = [ev("call_ended", reason="remote: BYE")]
TRANSFERRED = [
    ev("transfer_request", queue="sales"),
    ev("transfer_result", queue="sales", ok=True, status=200, reason="OK"),
    ev("call_ended", reason="ua gone"),
]


def test_a_call_that_ran_to_its_end_is_completed() -> None:
    v = c.classify([*START, heard("sales please"), ev("step", step="goodbye"), *BYE])
    assert (v.outcome, v.failure_class, v.why) == ("completed", "completed", "")


def test_a_planned_transfer_is_escalated_and_completed() -> None:
    v = c.classify([*START, ev("dtmf", digit="1"), ev("step", step="to_sales"), *TRANSFERRED])
    assert (v.outcome, v.failure_class) == ("escalated", "completed")


def test_the_caller_hanging_up_mid_plan_is_a_user_disconnection() -> None:
    v = c.classify([*START, *CALLER_LEFT])
    assert (v.outcome, v.failure_class) == ("abandoned", "user_disconnection")
    # hanging up after the bot said goodbye is not
    assert c.classify([*START, *BYE[:1], *CALLER_LEFT]).failure_class == "completed"


def test_a_failed_last_transfer_is_a_handover_failure() -> None:
    events = [
        *START,
        ev("transfer_request", queue="sales"),
        ev("transfer_result", queue="sales", ok=False, status=486, reason="Busy Here"),
        *BYE,
    ]
    v = c.classify(events)
    assert v.failure_class == "handover_failure" and "486" in v.why
    # a failed attempt followed by one that worked is not
    ok = ev("transfer_result", queue="support", ok=True, status=200, reason="OK")
    assert c.classify([*events[:-2], ok]).failure_class == "completed"


@pytest.mark.parametrize(
    "event",
    [
        ev("tool_result", ok=False, error="HTTP 500"),
        ev("tool_interrupted", step="book"),
        ev("llm_failed", error="x"),
    ],
)
def test_a_failed_tool_call_or_model_is_a_tool_failure(event: dict[str, Any]) -> None:
    v = c.classify([*START, event, *TRANSFERRED])
    assert (v.outcome, v.failure_class) == ("escalated", "tool_failure")


def test_a_policy_block_event_is_a_policy_block() -> None:
    v = c.classify([*START, ev("policy_block", rule="transfer outside the allowlist"), *BYE])
    assert v.failure_class == "policy_block" and "allowlist" in v.why


def test_no_matches_on_badly_heard_turns_are_recognition_errors() -> None:
    events = [
        *START,
        ev("asr_unrecognized", parts=1),
        ev("no_match", step="menu", count=1),
        heard("sails pease", 0.3),
        ev("no_match", step="menu", count=2),
        *TRANSFERRED,  # the plan's max_no_match handler handed the caller to a person
    ]
    v = c.classify(events)
    assert (v.outcome, v.failure_class) == ("escalated", "recognition_error") and "menu" in v.why


def test_two_failed_decodes_are_a_recognition_error() -> None:
    events = [*START, ev("asr_failed", error="timeout"), ev("asr_failed", error="timeout"), *CALLER_LEFT]
    assert c.classify(events).failure_class == "recognition_error"


def test_no_matches_on_clear_words_are_an_unsupported_request() -> None:
    events = [
        *START,
        heard("i want to cancel my contract"),
        ev("no_match", step="menu", count=1),
        heard("cancel the contract please"),
        ev("no_match", step="menu", count=2),
        *CALLER_LEFT,
    ]
    v = c.classify(events)
    assert (v.outcome, v.failure_class) == ("abandoned", "unsupported_request")


def test_a_no_match_streak_is_counted_on_one_step_only() -> None:
    events = [
        *START,
        heard("banana", 0.2),
        ev("no_match", step="menu", count=1),
        heard("sales", 0.9),
        ev("step", step="account"),
        heard("mumble", 0.2),
        ev("no_match", step="account", count=2),
        ev("step", step="goodbye"),
        *BYE,
    ]
    assert c.classify(events).failure_class == "completed"


def test_repeated_barge_ins_on_one_prompt_are_an_endpointing_error() -> None:
    events = [*START, ev("barge_in", audio_t=1.0), ev("barge_in", audio_t=3.0), heard("sales"), *TRANSFERRED]
    v = c.classify(events)
    assert v.failure_class == "endpointing_error" and "menu" in v.why
    # one barge-in per prompt is ordinary
    one_each = [
        *START,
        ev("barge_in", audio_t=1.0),
        ev("step", step="account"),
        ev("barge_in", audio_t=2),
        *BYE,
    ]
    assert c.classify(one_each).failure_class == "completed"


def test_answers_cut_early_that_match_nothing_are_an_endpointing_error() -> None:
    cut = [ev("early_endpoint"), heard("my account number is", 0.9), ev("no_match", step="account", count=1)]
    events = [*START, ev("step", step="account"), *cut, ev("step", step="menu"), ev("step", step="account")]
    events += [*cut, *CALLER_LEFT]
    assert c.classify(events).failure_class == "endpointing_error"


def test_a_caller_repeating_themselves_at_the_next_step_is_an_incorrect_intent() -> None:
    events = [
        *START,
        heard("I need to change my address"),
        ev("step", step="billing"),
        heard("no I need to change my address"),
        ev("step", step="address"),
        *BYE,
    ]
    v = c.classify(events)
    assert v.failure_class == "incorrect_intent" and "billing" in v.why
    different = [*START, heard("billing please"), ev("step", step="billing"), heard("my last invoice"), *BYE]
    assert c.classify(different).failure_class == "completed"


def test_answers_from_weak_knowledge_matches_are_weak_retrieval() -> None:
    events = [*START, ev("retrieval", score=0.31, threshold=0.5), *BYE]
    assert c.classify(events).failure_class == "weak_retrieval"
    assert c.classify([*START, ev("retrieval", score=0.8, threshold=0.5), *BYE]).failure_class == "completed"


def test_the_platform_ending_the_call_is_a_system_failure() -> None:
    assert c.classify([*START, ev("hangup_request", reason="bot_failed")]).failure_class == "system_failure"
    assert (
        c.classify([*START, ev("resume_gave_up", step="menu"), *CALLER_LEFT]).failure_class
        == "system_failure"
    )
    assert c.classify([]).failure_class == "system_failure"  # a call lost with its node keeps no events
    v = c.classify([*START, ev("call_ended", reason="ua gone")])  # neither side's plan ended it
    assert (v.outcome, v.failure_class) == ("failed", "system_failure")


def test_the_rules_decide_in_order() -> None:
    # a tool failure and then a failed transfer: the transfer is what the caller was left with
    events = [
        *START,
        ev("tool_result", ok=False, error="HTTP 500"),
        ev("transfer_result", queue="sales", ok=False, status=408, reason="Request Timeout"),
        *BYE,
    ]
    assert c.classify(events).failure_class == "handover_failure"
    assert [name for name, _ in c.RULES] == [n for n in c.CLASSES if n != "completed"]


def test_keys_that_match_nothing_are_an_unsupported_request_not_a_recognition_error() -> None:
    events = [
        *START,
        ev("dtmf", digit="9", method="rfc4733"),
        ev("no_match", step="menu", count=1),
        ev("dtmf", digit="8", method="rfc4733"),
        ev("no_match", step="menu", count=2),
        *BYE,
    ]
    assert c.classify(events).failure_class == "unsupported_request"
