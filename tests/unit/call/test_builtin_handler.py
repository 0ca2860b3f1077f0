from __future__ import annotations

from voicebot.call.handler import BuiltinHandler, Hangup, Play, StopAudio, Transfer
from voicebot.call.params import CallWorkerParams

PARAMS = CallWorkerParams(greeting="Hi.", transfer_digits={"1": "sales"})


def test_greeting_then_transfer_after_announcement() -> None:
    h = BuiltinHandler(PARAMS)
    (greet,) = h.start(0.0)
    assert isinstance(greet, Play) and greet.text == "Hi."
    actions = h.on_dtmf("1", 1.0)  # during the greeting: barge-in first
    assert isinstance(actions[0], StopAudio)
    announce = actions[1]
    assert isinstance(announce, Play) and "sales" in announce.text
    assert h.on_played(greet.mark, 1.1) == []  # a flushed greeting's mark does nothing
    assert h.on_played(announce.mark, 2.0) == [Transfer("sales", "caller pressed a transfer digit")]
    assert h.on_dtmf("2", 2.1) == []  # keys are ignored while transferring


def test_failed_transfer_apologises_and_accepts_keys_again() -> None:
    h = BuiltinHandler(PARAMS)
    h.start(0.0)
    h.on_dtmf("1", 1.0)
    (sorry,) = h.on_transfer_result("sales", ok=False, now=3.0)
    assert isinstance(sorry, Play) and "sorry" in sorry.text.lower()
    assert h.on_dtmf("#", 4.0)[-1].text == "Goodbye."  # type: ignore[union-attr]


def test_hangup_digit_says_goodbye_then_hangs_up() -> None:
    h = BuiltinHandler(PARAMS)
    (greet,) = h.start(0.0)
    h.on_played(greet.mark, 1.0)
    (bye,) = h.on_dtmf("#", 2.0)  # nothing playing: no barge-in needed
    assert isinstance(bye, Play)
    assert h.on_played(bye.mark, 3.0) == [Hangup("caller pressed the hangup digit")]
    assert h.digits == ["#"]


def test_prompts_cover_every_text_the_handler_can_say() -> None:
    h = BuiltinHandler(PARAMS)
    texts = set(h.prompts())
    said = [h.start(0)[0], *h.on_dtmf("5", 1), *h.on_dtmf("1", 2), *h.on_transfer_result("sales", False, 3)]
    assert {a.text for a in said if isinstance(a, Play)} <= texts


def test_caller_speech_barges_in_only_while_playing_and_when_allowed() -> None:
    h = BuiltinHandler(PARAMS)
    h.start(0.0)
    assert h.on_speech_started(0.5) == [StopAudio()]
    assert h.on_speech_started(0.9) == []  # already quiet
    stubborn = BuiltinHandler(PARAMS.model_copy(update={"barge_in": False}))
    stubborn.start(0.0)
    assert stubborn.on_speech_started(0.5) == []
