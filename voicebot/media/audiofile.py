"""Recorded prompts: WAV files admins provide, checked and converted to the call's rate."""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soxr

MAX_SECONDS = 300


def read_pcm16(
    source: Path | BinaryIO, name: str, max_seconds: float | None = MAX_SECONDS
) -> tuple[bytes, int]:
    """Mono s16le PCM and its rate from a 16-bit PCM WAV (a path or an open binary file; channels are
    mixed down); ValueError naming ``name`` and what is wrong for anything else."""
    try:
        with wave.open(str(source) if isinstance(source, Path) else source) as w:
            channels, width, rate, frames = (
                w.getnchannels(),
                w.getsampwidth(),
                w.getframerate(),
                w.getnframes(),
            )
            if width != 2:
                raise ValueError(f"{name}: {8 * width}-bit samples; save it as 16-bit PCM WAV")
            if max_seconds is not None and frames > max_seconds * rate:
                raise ValueError(f"{name}: longer than {max_seconds:g} s")
            raw = w.readframes(frames)
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"{name}: not a PCM WAV file ({exc})") from None
    except OSError as exc:
        raise ValueError(f"{name}: cannot read ({exc.strerror})") from None
    samples = np.frombuffer(raw[: len(raw) - len(raw) % (2 * channels)], dtype="<i2")
    if channels > 1:
        samples = np.round(samples.reshape(-1, channels).astype(np.float32).mean(axis=1)).astype("<i2")
    return samples.tobytes(), rate


def load_wav(path: Path, rate: int) -> bytes:
    """Mono s16le PCM at ``rate``; ValueError saying what is wrong for anything else."""
    pcm, src_rate = read_pcm16(path, path.name)
    if src_rate == rate:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    samples = soxr.resample(samples, src_rate, rate, quality="HQ")
    return bytes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def wav_bytes(pcm: bytes, rate: int) -> bytes:
    """A mono 16-bit WAV file holding ``pcm``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()
