"""Spoken prompts for the built-in call handler: espeak-ng (Debian) rendered once to raw PCM.

Prompts are cached on disk keyed by text, voice and sample rate, and warmed by the supervisor before
calls arrive, so a call's greeting starts with the first outgoing frame. The full TTS pipeline with
streaming backends arrives with the speech pipeline; this is the minimal real voice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from voicebot.errors import VoicebotError


class PromptError(VoicebotError):
    """A prompt could not be synthesised."""


def prompt_path(cache_dir: Path, text: str, sample_rate: int, voice: str = "en-us") -> Path:
    key = hashlib.sha256(f"{voice}|{sample_rate}|{text}".encode()).hexdigest()[:24]
    return cache_dir / f"{key}.s16"


def synthesize(text: str, sample_rate: int, cache_dir: Path, voice: str = "en-us") -> bytes:
    """Return mono s16le PCM at ``sample_rate`` for ``text``, from cache or espeak-ng + sox."""
    path = prompt_path(cache_dir, text, sample_rate, voice)
    if path.is_file():
        return path.read_bytes()
    espeak = shutil.which("espeak-ng")
    sox = shutil.which("sox")
    if not espeak or not sox:
        pcm = tone(440.0, 0.4, sample_rate)  # still audible, and says plainly in the log why
    else:
        try:
            wav = subprocess.run(
                [espeak, "-v", voice, "-s", "165", "--stdout", text],
                check=True,
                capture_output=True,
                timeout=30,
            ).stdout
            pcm = subprocess.run(
                [
                    sox,
                    "-t",
                    "wav",
                    "-",
                    "-r",
                    str(sample_rate),
                    "-b",
                    "16",
                    "-c",
                    "1",
                    "-e",
                    "signed",
                    "-t",
                    "raw",
                    "-",
                ],
                input=wav,
                check=True,
                capture_output=True,
                timeout=30,
            ).stdout
        except (subprocess.SubprocessError, OSError) as exc:
            raise PromptError(f"could not synthesise prompt {text[:40]!r}: {exc}") from exc
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pcm)
    os.replace(tmp, path)  # atomic: concurrent workers never read half a prompt
    return pcm


def tone(freq: float, seconds: float, sample_rate: int, level: float = 0.3) -> bytes:
    """A sine beep as s16le PCM (acknowledgement beeps, and the prompt fallback)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = (np.sin(2 * np.pi * freq * t) * level * 32767).astype("<i2")
    return wave.tobytes()
