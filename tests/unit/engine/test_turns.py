"""Turn stage times: a scripted timeline through the clock the call worker drives."""

from __future__ import annotations

from voicebot.engine.turns import TurnClock


def test_greeting_then_a_turn_in_order() -> None:
    clock = TurnClock(answered=100.0)
    assert clock.lead_mark() == "turn:0"
    assert clock.lead_mark() is None  # only the call's first audio carries it
    assert clock.mark_played("turn:0", 100.06) == {"turn": 0, "greeting_ms": 60}
    clock.transcribed(speech_end=105.0, now=105.7)
    assert clock.lead_mark() is None  # nothing decided yet: not a reply
    clock.decided(105.702, "dialplan")
    assert clock.lead_mark() == "turn:1"
    clock.tts_ready(105.75)
    assert clock.lead_mark() is None  # the reply's later sentences carry no mark
    clock.tts_ready(105.8)  # nor do they move its TTS time
    assert clock.mark_played("turn:1", 105.77) == {
        "turn": 1,
        "decided_by": "dialplan",
        "asr_final_ms": 700,
        "decision_ms": 702,
        "tts_first_audio_ms": 750,
        "reply_out_ms": 770,
    }
    assert clock.mark_played("turn:1", 106.0) is None


def test_a_turn_without_spoken_reply_is_kept_as_far_as_it_got() -> None:
    clock = TurnClock(answered=0.0)
    clock.transcribed(speech_end=2.0, now=3.0)
    clock.decided(3.0, "dialplan")  # a transfer without an announcement
    record = clock.abandon()
    assert record is not None and record["reply_out_ms"] is None and record["decision_ms"] == 1000
    assert clock.abandon() is None
    clock.transcribed(speech_end=5.0, now=5.5)
    assert clock.mark_played("turn:1", 6.0) is None  # a stale mark of the earlier turn
    assert clock.lead_mark() is None  # the caller spoke before any audio: no greeting to time
