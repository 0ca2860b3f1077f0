"""`say: {audio: file.wav}`: checked at load time (broken WAVs are errors), played at the call rate."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from voicebot.dialplan.check import check_paths
from voicebot.dialplan.interpreter import CallStarted, Interpreter, SayAction
from voicebot.dialplan.plan import parse
from voicebot.media.audiofile import load_wav

PLAN = "id: a\nversion: 1\nsteps:\n  hi:\n    say: {audio: %s, text: Hello.}\n  bye:\n    hangup: Bye.\n"


def tone_wav(path: Path, rate: int = 44100, channels: int = 2, width: int = 2, seconds: float = 0.5) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    mono = (np.sin(2 * np.pi * 440 * t) * 12000).astype("<i2")
    data = np.repeat(mono, channels).tobytes() if width == 2 else (mono // 256 + 128).astype("u1").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels if width == 2 else 1)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def test_a_recorded_prompt_is_played_at_the_call_rate(tmp_path: Path) -> None:
    tone_wav(tmp_path / "hello.wav")
    plan = parse(PLAN % "hello.wav", str(tmp_path / "plan.yaml"))
    (say, *_) = Interpreter(plan).handle(CallStarted(0.0))
    assert isinstance(say, SayAction) and say.audio == str((tmp_path / "hello.wav").resolve())
    pcm = load_wav(Path(say.audio), 8000)
    assert abs(len(pcm) - 8000) < 16  # 0.5 s of stereo 44.1 kHz -> 0.5 s of mono 8 kHz


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("missing.wav", None, "cannot read"),
        ("broken.wav", lambda p: p.write_bytes(b"RIFF\x00\x00junk"), "not a PCM WAV file"),
        ("eight.wav", lambda p: tone_wav(p, width=1), "8-bit samples"),
    ],
)
def test_unusable_audio_is_an_error_at_the_field(
    tmp_path: Path, name: str, make: object, message: str
) -> None:
    if make is not None:
        make(tmp_path / name)  # type: ignore[operator]
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN % name)
    (diag,) = check_paths([path])
    assert diag.severity == "error" and (diag.line, diag.column) == (5, 11) and message in diag.message
