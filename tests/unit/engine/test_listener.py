"""The listener on real audio: one turn with a pause event, blips and noise ignored."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from voicebot.engine.listener import Listener, TurnEnded, TurnPaused, TurnResumed, TurnSegment, TurnStarted

AUDIO = Path(__file__).resolve().parents[2] / "data" / "audio"


def feed_file(name: str, trailing_silence_s: float = 1.0, end_of_turn_ms: int | None = None) -> list[object]:
    with wave.open(str(AUDIO / name)) as w:
        pcm = w.readframes(w.getnframes())
    pcm += b"\x00\x00" * int(8000 * trailing_silence_s)
    listener = Listener(8000)
    if end_of_turn_ms is not None:
        listener.end_of_turn(end_of_turn_ms)
    return [ev for i in range(0, len(pcm) - 319, 320) for ev in listener.feed(pcm[i : i + 320])]


def test_a_request_gives_start_pauses_and_one_end_with_all_the_audio() -> None:
    events = feed_file("transfer_sales_8k_s16.wav")
    kinds = [type(e) for e in events]
    assert kinds[0] is TurnStarted and kinds[-1] is TurnEnded and kinds.count(TurnEnded) == 1
    # every pause is either resumed or followed by the end of the turn
    assert kinds.count(TurnPaused) == kinds.count(TurnResumed) + 1
    last_pause = [e for e in events if isinstance(e, TurnPaused)][-1]
    end = events[-1]
    assert isinstance(end, TurnEnded) and end.audio.startswith(last_pause.audio)
    assert 2.5 < len(end.audio) / 16000 < 5.0  # the whole utterance plus preroll and hangover


def test_noise_gives_nothing() -> None:
    assert feed_file("comfort_noise_15s_8k.wav", 0) == []


def test_odd_frames_are_skipped() -> None:
    assert Listener(8000).feed(b"\x01") == []


def test_the_steps_end_of_turn_silence_decides_where_a_turn_ends() -> None:
    """ "Hello? Hello? Can you hear me? I have been waiting..." pauses between its phrases: a short
    end-of-turn silence (a yes/no step) splits it, the default keeps it one turn."""
    short = feed_file("barge_in_long_8k_s16.wav", end_of_turn_ms=300)
    default = feed_file("barge_in_long_8k_s16.wav")
    assert sum(isinstance(e, TurnEnded) for e in default) == 1
    assert sum(isinstance(e, TurnEnded) for e in short) == 4


def _frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + 320] for i in range(0, len(pcm) - 319, 320)]


def test_a_long_turn_comes_in_segments_that_hold_all_of_its_audio() -> None:
    """A 70 s monologue (one sentence again and again, 300 ms between: never the end of a turn) is
    handed out in segments of 20-27 s cut at pauses, then the rest at the end; nothing is lost."""
    with wave.open(str(AUDIO / "transfer_sales_8k_s16.wav")) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    loud = np.flatnonzero(np.abs(samples) > 300)
    sentence = samples[loud[0] : loud[-1] + 1].tobytes()  # without the file's own silence
    gap = b"\x00\x00" * int(8000 * 0.3)
    pcm = b""
    while len(pcm) < 70 * 16000:
        pcm += sentence + gap
    pcm += b"\x00\x00" * 8000
    listener = Listener(8000)
    events = [ev for frame in _frames(pcm) for ev in listener.feed(frame)]
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("TurnStarted") == 1 and kinds.count("TurnEnded") == 1, kinds
    segments = [e for e in events if isinstance(e, TurnSegment)]
    end = events[-1]
    assert isinstance(end, TurnEnded) and end.segments == len(segments) == 3
    assert [s.index for s in segments] == [0, 1, 2]
    for s in segments:
        assert 20.0 <= len(s.audio) / 16000 <= 27.0
    kept = sum(len(s.audio) for s in segments) + len(end.audio)
    speech_start = next(e for e in events if isinstance(e, TurnStarted))
    # every frame from the turn's preroll to its end is in exactly one part
    assert abs(kept / 16000 - (end.at + 0.7 - speech_start.at)) < 0.5
    pauses = [e for e in events if isinstance(e, TurnPaused)]
    assert pauses and all(len(p.audio) / 16000 < 27.0 for p in pauses)  # tail-relative, never the whole


def test_speech_without_any_pause_is_cut_at_the_hard_limit() -> None:
    """Noise-like speech with no pause at all: cut at max_segment_s, not held for ever."""
    rng = np.random.default_rng(1)
    tone = (np.sin(np.arange(8000 * 40) * 2 * np.pi * 440 / 8000) * 8000).astype("<i2")
    pcm = (tone + rng.integers(-2000, 2000, tone.size).astype("<i2")).astype("<i2").tobytes()
    listener = Listener(8000)
    events = [ev for frame in _frames(pcm) for ev in listener.feed(frame)]
    segments = [e for e in events if isinstance(e, TurnSegment)]
    assert any(isinstance(e, TurnStarted) for e in events)  # the VAD takes the noisy tone for speech
    assert len(segments) == 1 and abs(len(segments[0].audio) / 16000 - 27.0) < 0.1
