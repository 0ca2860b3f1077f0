"""espeak-ng (Debian package): robotic but tiny and always there; the fallback backend."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave
from collections.abc import Iterator

import numpy as np

from voicebot.tts.base import Audio, TtsError, register

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@register("espeak")
class EspeakTts:
    name = "espeak"

    def __init__(self, voice: str = "en-us", words_per_minute: int = 165) -> None:
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise TtsError("espeak-ng is not installed: run `make install` (apt package espeak-ng)")
        self._bin = binary
        self.voice = voice
        self._wpm = words_per_minute
        self.sample_rate = 22050

    def stream(self, text: str) -> Iterator[Audio]:
        for sentence in (s for s in _SENTENCE.split(text.strip()) if s):
            try:
                out = subprocess.run(
                    [self._bin, "-v", self.voice, "-s", str(self._wpm), "--stdout", "--", sentence],
                    check=True,
                    capture_output=True,
                    timeout=30,
                ).stdout
                with wave.open(io.BytesIO(out)) as wav:
                    self.sample_rate = wav.getframerate()
                    pcm = wav.readframes(wav.getnframes())
            except (subprocess.SubprocessError, OSError, wave.Error) as exc:
                raise TtsError(f"espeak-ng failed on {sentence[:40]!r}: {exc}") from exc
            yield (np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0).astype(np.float32)
