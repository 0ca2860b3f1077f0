"""Caller utterances for tests and benchmarks, rendered by our TTS at telephone rate."""

from __future__ import annotations

import wave
from pathlib import Path

from voicebot.tts.base import create, synthesize
from voicebot.tts.resample import to_call_pcm


def spoken_wav(path: Path, text: str, rate: int = 8000) -> bytes:
    """Write ``text`` spoken by hibari as a mono 16-bit WAV at ``rate``; return its PCM."""
    backend = create("hibari")
    pcm = to_call_pcm(synthesize(backend, text), backend.sample_rate, rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return pcm
