"""Short caller prompts vs. Whisper's repetition loops: word error rate, loops, decode time.

    .venv/bin/python bench/asr_repeats.py                       # penalties 1.0 (none) and 1.05
    .venv/bin/python bench/asr_repeats.py --penalties 1.0 1.05 1.1 1.2 --voices piper espeak hibari
    .venv/bin/python bench/asr_repeats.py --save tests/data/audio/short_prompts  # keep loops as WAVs

Each phrase of bench/data/short_prompts.txt (2-3 s said) is spoken by each TTS voice, resampled to
8 kHz and cut as the listener cuts a turn (0.3 s before, 0.7 s after), then decoded by the Whisper
backend (voicebot.asr.whisper) with each repetition penalty. "raw loops" counts first decodes that
loop (voicebot.asr.repetition.looped); "loops" counts what the backend returns after its second
opinion (full window) and collapse. The voices' output varies a little from run to run (piper and
hibari sample noise), so loop counts move by one or two between runs.
"""

from __future__ import annotations

import argparse
import sys
import wave
from pathlib import Path

import numpy as np
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from asr_window import wer, words
from stats import pct

from voicebot.asr import repetition
from voicebot.asr.whisper import WhisperAsr
from voicebot.tts.base import create, synthesize
from voicebot.tts.resample import to_call_pcm

REPO = Path(__file__).resolve().parents[1]
RATE = 8000


def prompts(voices: list[str]) -> list[tuple[str, str, bytes]]:
    """(name, text, PCM with 0.3 s before and 0.7 s after) for every phrase in every voice."""
    phrases = [p.strip() for p in (REPO / "bench" / "data" / "short_prompts.txt").read_text().splitlines()]
    out = []
    for voice in voices:
        backend = create(voice)
        for i, text in enumerate(p for p in phrases if p):
            pcm = to_call_pcm(synthesize(backend, text), backend.sample_rate, RATE)
            out.append((f"{voice}_{i:02d}", text, bytes(2 * 2400) + pcm + bytes(2 * 5600)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--penalties", type=float, nargs="+", default=[1.0, 1.05])
    ap.add_argument("--voices", nargs="+", default=["piper", "espeak", "hibari"])
    ap.add_argument("--model-dir", type=Path, default=REPO / "var" / "models" / "whisper-base")
    ap.add_argument("--save", type=Path, help="write the prompts whose first decode loops (penalty 1.0) here")
    args = ap.parse_args()
    cases = prompts(args.voices)
    seconds = [len(pcm) / 2 / RATE - 1.0 for _, _, pcm in cases]
    print(f"{len(cases)} prompts, {min(seconds):.1f}-{max(seconds):.1f} s of speech each")
    print(f"{'penalty':>8} {'WER':>6} {'raw loops':>10} {'loops':>6} {'p50 s':>6} {'p95 s':>6}")
    for penalty in args.penalties:
        asr = WhisperAsr(args.model_dir, repetition_penalty=penalty)
        errors = total = raw_loops = loops = 0
        times: list[float] = []
        for name, text, pcm in cases:
            audio = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
            first, _, _ = asr._decode(soxr.resample(audio, RATE, 16000, quality="HQ"), (), asr._min_window)
            raw = repetition.looped(first, len(pcm) / 2 / RATE)
            raw_loops += raw
            result = asr.transcribe(pcm, RATE)
            times.append(result.decode_s)
            loops += repetition.looped(result.text, result.audio_s)
            e, n = wer(words(text), words(result.text))
            errors, total = errors + e, total + n
            if raw and args.save is not None and penalty == 1.0:
                args.save.mkdir(parents=True, exist_ok=True)
                with wave.open(str(args.save / f"{name}_8k_s16.wav"), "wb") as w:
                    w.setnchannels(1)
                    w.setsampwidth(2)
                    w.setframerate(RATE)
                    w.writeframes(pcm)
                with (args.save / "TRANSCRIPTS.tsv").open("a") as tsv:
                    tsv.write(f"{name}_8k_s16.wav\t{text}\n")
        print(
            f"{penalty:>8g} {errors / total:>6.1%} {raw_loops:>5}/{len(cases):<4} {loops:>6} "
            f"{pct(times, 50):>6.3f} {pct(times, 95):>6.3f}"
        )


if __name__ == "__main__":
    main()
