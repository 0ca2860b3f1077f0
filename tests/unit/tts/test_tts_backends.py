"""Real TTS backends (hibari's ONNX voice, espeak-ng), resampling and the prompt cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicebot.errors import ConfigError
from voicebot.media.prompts import Prompts
from voicebot.tts.base import create, synthesize
from voicebot.tts.resample import to_call_pcm
from voicebot.vad.classifier import SpeechClassifier


@pytest.mark.parametrize("name", ["hibari", "espeak"])
def test_backend_speaks_sentence_by_sentence(name: str) -> None:
    backend = create(name)
    parts = list(backend.stream("Hello there. Press one for sales."))
    assert len(parts) == 2
    audio = np.concatenate(parts)
    assert 1.0 < audio.size / backend.sample_rate < 6.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.01


def test_call_rate_audio_is_speech_to_the_vad() -> None:
    backend = create("hibari")
    pcm = to_call_pcm(
        synthesize(backend, "Thank you for calling. How can I help?"), backend.sample_rate, 8000
    )
    clf = SpeechClassifier(8000)
    frames = [pcm[i : i + 320] for i in range(0, len(pcm) - 319, 320)]
    # leading silence and the pause between sentences are not speech; the words are
    assert sum(clf.classify(f).speech for f in frames) > len(frames) // 3


def test_resample_keeps_duration_and_clips() -> None:
    one_second = np.full(24000, 2.0, dtype=np.float32)  # out of range on purpose
    pcm = to_call_pcm(one_second, 24000, 8000)
    samples = np.frombuffer(pcm, dtype="<i2")
    assert abs(samples.size - 8000) <= 2 and samples.max() <= 32767
    assert to_call_pcm(np.zeros(0, np.float32), 24000, 8000) == b""


def test_prompt_cache_synthesises_once(tmp_path: Path) -> None:
    prompts = Prompts(tmp_path, 8000, backend="hibari")
    first = prompts.pcm("Goodbye.")
    assert prompts.path("Goodbye.").is_file()
    again = Prompts(tmp_path, 8000, backend="hibari")
    assert again.pcm("Goodbye.") == first and again._backend is None  # served from disk, no model load


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="available: coqui, espeak, hibari, piper"):
        create("coqui-but-misspelt")


def test_prompts_start_with_the_first_word(tmp_path: Path) -> None:
    from voicebot.media.prompts import trim_leading_silence

    pcm = Prompts(tmp_path, 8000, backend="hibari").pcm("Hello.")
    head = np.frombuffer(pcm[:320], dtype="<i2")  # first 20 ms
    rest = np.frombuffer(pcm[320:1600], dtype="<i2")  # the next 80 ms carry the word
    assert np.abs(head).max() < 2000 < np.abs(rest).max()
    assert trim_leading_silence(b"\x00\x00" * 100, 8000) == b"\x00\x00" * 100  # all silence: unchanged


def test_prompts_stream_sentence_by_sentence_then_cache_the_whole(tmp_path: Path) -> None:
    from voicebot.media.prompts import Prompts

    text = "Thanks for calling. Your balance is forty two dollars."
    prompts = Prompts(tmp_path, 8000, backend="hibari")
    parts = list(prompts.stream(text))
    assert len(parts) >= 2 and all(parts)  # the first sentence is ready before the second
    assert prompts.path(text).is_file() and prompts.pcm(text) == b"".join(parts)
    other_voice = Prompts(tmp_path, 8000, backend="hibari", voice="heart")
    assert other_voice.path(text) != prompts.path(text)  # the cache key includes the voice


def test_a_backend_loads_once_per_process_and_voice(tmp_path: Path) -> None:
    from voicebot.media.prompts import Prompts

    a, b = Prompts(tmp_path, 8000, backend="hibari"), Prompts(tmp_path / "x", 8000, backend="hibari")
    a.warm()
    assert a.backend() is b.backend()  # a call worker pays the model load once, before its call
    assert Prompts(tmp_path, 8000, backend="hibari", voice="heart").backend() is not a.backend()
    assert not list(tmp_path.glob("*.s16"))  # warming caches nothing
