"""Backend audio (float32 at the backend's rate) -> call audio (s16le at the call's rate)."""

from __future__ import annotations

import numpy as np
import soxr

from voicebot.tts.base import Audio


def to_call_pcm(audio: Audio, src_rate: int, dst_rate: int) -> bytes:
    """Resample with soxr's high-quality filter (anti-aliased) and convert to s16le with clipping."""
    if audio.size == 0:
        return b""
    if src_rate != dst_rate:
        audio = soxr.resample(audio, src_rate, dst_rate, quality="HQ")
    clipped = np.clip(audio, -1.0, 1.0)
    return (clipped * 32767.0).astype("<i2").tobytes()
