from __future__ import annotations

import wave
from pathlib import Path

import pytest

from voicebot.vad.classifier import SpeechClassifier, level_dbfs
from voicebot.vad.endpointing import Endpointer, EndpointParams, SpeechEnded, SpeechStarted, VadState

AUDIO = Path(__file__).resolve().parents[2] / "data" / "audio"


def run(pattern: str, params: EndpointParams | None = None) -> list[object]:
    """pattern: one char per 20 ms frame, 'S' speech, '.' silence."""
    ep = Endpointer(params or EndpointParams())
    events: list[object] = []
    for i, ch in enumerate(pattern):
        events += ep.feed(ch == "S", i * 0.02)
    return events


def test_a_turn_opens_after_min_speech_and_closes_after_hangover() -> None:
    events = run("." * 5 + "S" * 50 + "." * 40)
    assert events == [SpeechStarted(0.1), SpeechEnded(at=1.1, duration_s=1.0)]


def test_short_blips_never_open_a_turn() -> None:
    assert run(("SSS" + "." * 20) * 10) == []  # 60 ms "mhm"s and clicks


def test_pauses_shorter_than_the_hangover_stay_in_one_turn() -> None:
    events = run("S" * 20 + "." * 25 + "S" * 20 + "." * 40)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert events[1] == SpeechEnded(at=1.3, duration_s=1.3)


def test_endless_speech_is_cut_at_max_turn() -> None:
    events = run("S" * 200, EndpointParams(max_turn_ms=2000))
    assert events[1] == SpeechEnded(at=2.0, duration_s=2.0, truncated=True)
    assert isinstance(events[2], SpeechStarted)  # whatever goes on is a new turn, cut again


def test_invalid_params_are_refused() -> None:
    with pytest.raises(ValueError):
        EndpointParams(start_ms=400, start_window_ms=300)


def frames(name: str) -> tuple[list[bytes], int]:
    with wave.open(str(AUDIO / name)) as w:
        pcm, rate = w.readframes(w.getnframes()), w.getframerate()
    n = rate // 50 * 2
    return [pcm[i : i + n] for i in range(0, len(pcm) - n + 1, n)], rate


def turns(name: str) -> list[object]:
    fr, rate = frames(name)
    clf, ep = SpeechClassifier(rate), Endpointer(EndpointParams())
    out: list[object] = []
    for i, f in enumerate(fr):
        out += ep.feed(clf.classify(f).speech, i * 0.02)
    out += ep.feed(False, len(fr) * 0.02) if ep.state is not VadState.QUIET else []
    return out


def test_pink_noise_at_minus_45_db_never_opens_a_turn() -> None:
    assert turns("comfort_noise_15s_8k.wav") == []


def test_a_spoken_request_is_one_turn() -> None:
    events = turns("transfer_sales_8k_s16.wav")
    assert isinstance(events[0], SpeechStarted) and events[0].at < 0.5
    assert sum(isinstance(e, SpeechStarted) for e in events) == 1


def test_level_and_bad_frames() -> None:
    assert level_dbfs(b"\x00\x00" * 160) == -96.0
    assert -7 < level_dbfs(b"\x00\x40" * 160) < -5  # 16384 / 32768 = -6 dBFS
    clf = SpeechClassifier(8000)
    with pytest.raises(ValueError, match="VAD rejected"):
        clf.classify(b"\x00\x40" * 7)
    with pytest.raises(ValueError):
        SpeechClassifier(11025)
