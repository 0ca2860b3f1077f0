"""hibari-tts: 8 MB ONNX voice (af_heart), 24 kHz, ~20 ms to first audio; the offline default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from voicebot.tts.base import Audio, TtsError, register


@register("hibari")
class HibariTts:
    name = "hibari"

    def __init__(self, voice: str = "heart", threads: int = 1, speed: float = 1.0, seed: int = 7) -> None:
        try:
            from hibari import SAMPLE_RATE, Hibari
        except ImportError as exc:  # pragma: no cover - the package is a pinned dependency
            raise TtsError("hibari-tts is not installed: run `make install`") from exc
        self.voice = voice
        self.sample_rate = int(SAMPLE_RATE)
        self._speed = speed
        self._seed = seed  # fixed noise: the same text always renders the same audio (cacheable)
        self._engine: Any = Hibari(voice=voice, threads=threads)

    def stream(self, text: str) -> Iterator[Audio]:
        try:
            for part in self._engine.stream(text, speed=self._speed, seed=self._seed):
                yield np.asarray(part, dtype=np.float32)
        except Exception as exc:
            raise TtsError(f"hibari could not synthesise {text[:40]!r}: {exc}") from exc
