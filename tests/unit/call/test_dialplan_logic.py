"""The dialplan adapter's timing rules: when the no-input timer runs, when barge-in is allowed."""

from __future__ import annotations

from pathlib import Path

from voicebot.call.dialplan_logic import DialplanLogic
from voicebot.call.handler import (
    Action,
    ArmTimer,
    CancelAgent,
    EndOfTurn,
    Play,
    RunAgent,
    StopAudio,
    Transfer,
)
from voicebot.dialplan.plan import parse

EXAMPLE = parse((Path(__file__).resolve().parents[3] / "dialplans" / "example.yaml").read_bytes(), "example")


def plays(actions: list[Action]) -> list[Play]:
    return [a for a in actions if isinstance(a, Play)]


def test_timer_arms_only_when_the_menu_prompt_has_played() -> None:
    logic = DialplanLogic(EXAMPLE)
    started = logic.start(0.0)
    assert EndOfTurn(700) in started  # the step's end-of-turn silence goes to the listener
    greeting, menu = plays(started)
    assert logic.on_played(greeting.mark, 1.0) == []
    assert logic.on_played(menu.mark, 5.0) == [ArmTimer(6.0)]
    (reprompt,) = logic.on_no_input(11.0)
    assert isinstance(reprompt, Play) and reprompt.text.startswith("Sorry, I did not catch that.")


def test_speaking_over_the_menu_barges_in_and_keeps_the_timer_off() -> None:
    logic = DialplanLogic(EXAMPLE)
    _, menu = plays(logic.start(0.0))
    assert logic.on_speech_started(1.0) == [StopAudio()]
    assert logic.on_played(menu.mark, 1.0) == []  # flushed, caller answering: no timer
    assert logic.expects("sales please") and not logic.expects("the weather")
    (announce,) = logic.on_transcript("sales please", 0.9, 3.0)
    assert isinstance(announce, Play) and announce.text == "Transferring you to sales."
    assert logic.on_played(announce.mark, 5.0) == [Transfer("sales", "dialplan transfer")]
    assert logic.transferring


def test_without_asr_a_spoken_turn_rearms_the_timer() -> None:
    logic = DialplanLogic(EXAMPLE)
    _, menu = plays(logic.start(0.0))
    logic.on_speech_started(1.0)
    logic.on_played(menu.mark, 1.0)
    assert logic.on_speech_ended(3.0, will_transcribe=False) == [ArmTimer(6.0)]
    assert logic.on_speech_ended(3.0, will_transcribe=True) == []


def test_prompts_are_the_plans_static_texts() -> None:
    texts = DialplanLogic(EXAMPLE).prompts()
    assert (
        "Hello, this is voicebot." in texts and "Goodbye." in texts and "Transferring you to sales." in texts
    )


BILLING = parse(
    (Path(__file__).resolve().parents[3] / "dialplans" / "billing.yaml").read_bytes(),
    str(Path(__file__).resolve().parents[3] / "dialplans" / "billing.yaml"),
)


def test_call_details_become_variables() -> None:
    logic = DialplanLogic(BILLING, caller="alice", called="100", call_id="c-1")
    logic.start(0.0)
    v = logic.it.state.variables
    assert (v["caller"], v["called"], v["call_id"]) == ("alice", "100", "c-1")
    assert len(v["today"]) == 10  # ISO date: "tomorrow" is understood relative to it


def test_typing_keys_rearms_the_timer_with_the_inter_digit_gap_and_hides_the_pin() -> None:
    logic = DialplanLogic(BILLING)
    for p in plays(logic.start(0.0)):
        logic.on_played(p.mark, 1.0)
    assert logic.collect is not None and not logic.sensitive  # the account number is not secret
    gap = ArmTimer(logic.collect.digit_timeout_s)
    assert logic.on_dtmf("4", 2.0) == [gap]  # one key in: the entry ends after the gap, not 6 s
    for d in "7192":
        actions = logic.on_dtmf(d, 2.5)
    (pin_prompt,) = [a for a in actions if isinstance(a, Play)]
    assert "PIN" in pin_prompt.text
    logic.on_played(pin_prompt.mark, 4.0)
    assert logic.sensitive  # keys and words are now kept out of logs and call records
    assert logic.on_dtmf("1", 5.0) == [gap]


def test_transfer_carries_the_dialplans_context() -> None:
    logic = DialplanLogic(BILLING)
    logic.start(0.0)
    (announce,) = [a for a in logic.on_transcript("an agent please", 0.9, 1.0) if isinstance(a, Play)]
    (transfer,) = logic.on_played(announce.mark, 2.0)
    assert transfer == Transfer("billing", "billing: caller asked", {"Account": "", "Verified": "no"})
    (busy,) = [
        a for a in logic.on_transfer_result("billing", False, 3.0, "486 Busy Here") if isinstance(a, Play)
    ]
    assert busy.text.startswith("Sorry, everyone is busy")
    assert logic.it.state.variables["transfer_reason"] == "486 Busy Here"


ASSISTANT = parse(
    (Path(__file__).resolve().parents[3] / "dialplans" / "assistant.yaml").read_bytes(), "assistant.yaml"
)


def test_an_llm_reply_is_heard_before_the_no_input_timer_runs_and_keys_interrupt_it() -> None:
    logic = DialplanLogic(ASSISTANT)
    started = logic.start(0.0)
    (welcome,) = plays(started)
    (run,) = [a for a in started if isinstance(a, RunAgent)]
    assert "Corner Hardware" in run.turn.instructions and run.turn.messages == ()
    first, second = logic.agent_sentence("Hello there."), logic.agent_sentence("How can I help?")
    assert not any(isinstance(a, ArmTimer) for a in logic.on_agent_reply(True, 1.0))  # still playing
    logic.on_played(welcome.mark, 1.5)
    assert logic.on_played(first.mark, 2.0) == []
    assert logic.on_played(second.mark, 3.0) == [ArmTimer(6.0)]  # heard in full: now the caller's turn
    # The caller presses a key while the next reply is being spoken.
    logic.on_dtmf("5", 4.0)
    logic.agent_sentence("Let me check.")
    out = logic.on_dtmf("1", 5.0)
    assert out[:2] == [StopAudio(), CancelAgent()]
    (again,) = [a for a in out if isinstance(a, RunAgent)]
    assert again.turn.messages[-3:] == (
        ("user", "(pressed 5)"),
        ("assistant", "Let me check."),
        ("user", "(pressed 1)"),
    )
    assert logic.on_played("agent#3", 5.1) == []  # a flushed mark of the old reply arms nothing


def test_a_collect_replaced_by_an_llm_turn_in_the_same_batch_arms_no_timer() -> None:
    """The interpreter can open a collect and hand the turn to the LLM in one batch: the timer is the
    caller's, and the caller's turn only comes after the LLM has spoken."""
    from voicebot.dialplan import events as ip

    logic = DialplanLogic(ASSISTANT)
    collect = ip.StartCollect(kind="text", timeout_s=6.0)
    assert logic._adapt([collect]) == [EndOfTurn(700), ArmTimer(6.0)]  # alone: the caller's turn now
    out = logic._adapt([collect, ip.AgentTurn(instructions="Help.", messages=())])
    assert not any(isinstance(a, ArmTimer) for a in out) and logic.collect is None
