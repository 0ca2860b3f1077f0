"""Recorded prompts: WAV files admins provide, checked and converted to the call's rate."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr

MAX_SECONDS = 300


def load_wav(path: Path, rate: int) -> bytes:
    """Mono s16le PCM at ``rate``; ValueError saying what is wrong for anything else."""
    try:
        with wave.open(str(path)) as w:
            channels, width, src_rate, frames = (
                w.getnchannels(),
                w.getsampwidth(),
                w.getframerate(),
                w.getnframes(),
            )
            if width != 2:
                raise ValueError(f"{path.name}: {8 * width}-bit samples; save it as 16-bit PCM WAV")
            if frames > MAX_SECONDS * src_rate:
                raise ValueError(f"{path.name}: longer than {MAX_SECONDS} s")
            raw = w.readframes(frames)
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"{path.name}: not a PCM WAV file ({exc})") from None
    except OSError as exc:
        raise ValueError(f"{path.name}: cannot read ({exc.strerror})") from None
    samples = (
        np.frombuffer(raw[: len(raw) - len(raw) % (2 * channels)], dtype="<i2").astype(np.float32) / 32768
    )
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if src_rate != rate:
        samples = soxr.resample(samples, src_rate, rate, quality="HQ")
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
