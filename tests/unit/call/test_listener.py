"""The listener on real audio: one turn with a pause event, blips and noise ignored."""

from __future__ import annotations

import wave
from pathlib import Path

from voicebot.call.listener import Listener, TurnEnded, TurnPaused, TurnResumed, TurnStarted

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
