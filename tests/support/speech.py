"""Caller utterances for tests and benchmarks, rendered by our TTS at telephone rate."""

from __future__ import annotations

import wave
from pathlib import Path

from voicebot.tts.base import create, synthesize
from voicebot.tts.resample import to_call_pcm


def write_wav(path: Path, pcm: bytes, rate: int = 8000) -> None:
    """A mono 16-bit WAV."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


def spoken_wav(path: Path, text: str, rate: int = 8000, voice: str = "hibari") -> bytes:
    """Write ``text`` spoken by ``voice`` (a TTS backend) as a mono 16-bit WAV at ``rate``; return its PCM."""
    backend = create(voice)
    pcm = to_call_pcm(synthesize(backend, text), backend.sample_rate, rate)
    write_wav(path, pcm, rate)
    return pcm
