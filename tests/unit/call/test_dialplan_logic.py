"""The dialplan adapter's timing rules: when the no-input timer runs, when barge-in is allowed."""

from __future__ import annotations

from pathlib import Path

from voicebot.call.dialplan_logic import DialplanLogic
from voicebot.call.handler import ArmTimer, Play, StopAudio, Transfer
from voicebot.dialplan.plan import parse

EXAMPLE = parse((Path(__file__).resolve().parents[3] / "dialplans" / "example.yaml").read_bytes(), "example")


def test_timer_arms_only_when_the_menu_prompt_has_played() -> None:
    logic = DialplanLogic(EXAMPLE)
    greeting, menu = logic.start(0.0)
    assert isinstance(greeting, Play) and isinstance(menu, Play)
    assert logic.on_played(greeting.mark, 1.0) == []
    assert logic.on_played(menu.mark, 5.0) == [ArmTimer(6.0)]
    (reprompt,) = logic.on_no_input(11.0)
    assert isinstance(reprompt, Play) and reprompt.text.startswith("Sorry, I did not catch that.")


def test_speaking_over_the_menu_barges_in_and_keeps_the_timer_off() -> None:
    logic = DialplanLogic(EXAMPLE)
    _, menu = logic.start(0.0)
    assert logic.on_speech_started(1.0) == [StopAudio()]
    assert logic.on_played(menu.mark, 1.0) == []  # flushed, caller answering: no timer
    assert logic.expects("sales please") and not logic.expects("the weather")
    (announce,) = logic.on_transcript("sales please", 0.9, 3.0)
    assert isinstance(announce, Play) and announce.text == "Transferring you to sales."
    assert logic.on_played(announce.mark, 5.0) == [Transfer("sales", "dialplan transfer")]
    assert logic.transferring


def test_without_asr_a_spoken_turn_rearms_the_timer() -> None:
    logic = DialplanLogic(EXAMPLE)
    _, menu = logic.start(0.0)
    logic.on_speech_started(1.0)
    logic.on_played(menu.mark, 1.0)
    assert logic.on_speech_ended(3.0, will_transcribe=False) == [ArmTimer(6.0)]
    assert logic.on_speech_ended(3.0, will_transcribe=True) == []


def test_prompts_are_the_plans_static_texts() -> None:
    texts = DialplanLogic(EXAMPLE).prompts()
    assert (
        "Hello, this is voicebot." in texts and "Goodbye." in texts and "Transferring you to sales." in texts
    )
