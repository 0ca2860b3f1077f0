"""Which speculative decode may answer a caller's turn (voicebot/engine/speculation.py)."""

from __future__ import annotations

from voicebot.asr.base import Transcript
from voicebot.engine.speculation import Speculation


def said(text: str) -> Transcript:
    return Transcript(text=text, confidence=0.9, audio_s=1.0, decode_s=0.1)


def test_a_decode_of_the_newest_pause_answers_the_turn() -> None:
    s = Speculation()
    turn = s.started()
    s.paused(32000)
    assert s.guessed(turn, 32000, said("sales"))
    assert s.final() == said("sales")
    assert s.take(turn) and not s.take(turn)  # one answer per turn


def test_speech_after_the_pause_makes_its_decode_a_guess_only() -> None:
    """'sales, ... no, support': the decode cut at the first pause must not answer the turn."""
    s = Speculation()
    turn = s.started()
    s.paused(32000)
    s.resumed()
    assert not s.guessed(turn, 32000, said("sales"))  # the caller is still talking
    assert s.final() is None
    s.paused(64000)  # they stop again: only a decode of all of it covers the turn
    assert s.final() is None
    assert s.guessed(turn, 64000, said("sales no support"))
    assert s.final() == said("sales no support")


def test_a_slow_decode_of_an_earlier_turn_answers_nothing() -> None:
    s = Speculation()
    first = s.started()
    s.paused(16000)
    second = s.started()
    assert not s.current(first) and s.current(second)
    assert not s.guessed(first, 16000, said("sales"))
    assert s.guess is None and not s.take(first)
    s.paused(8000)
    assert s.final() is None  # nothing decoded for this turn yet: decode it whole


def test_an_answered_turn_takes_no_more_guesses() -> None:
    s = Speculation()
    turn = s.started()
    s.paused(100)
    assert s.take(turn)
    assert not s.guessed(turn, 100, said("late")) and not s.current(turn)


def test_a_segment_cut_drops_the_guess_of_the_audio_before_it() -> None:
    s = Speculation()
    turn = s.started()
    s.paused(32000)
    assert s.guessed(turn, 32000, said("first half"))
    s.segmented()  # that audio now belongs to a segment decoded on its own
    assert s.final() is None and s.current(turn)
