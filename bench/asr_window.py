"""Whisper's encoder window vs. decode time and words: 30 s (what faster-whisper always pads to) vs.
the shorter windows voicebot uses (voicebot.asr.whisper.window_frames).

    .venv/bin/python bench/asr_window.py                  # windows 30, 15, 10 s; 1 thread
    .venv/bin/python bench/asr_window.py --windows 30 10 8 --threads 2 --runs 5

Prints, per window: decode time p50/p95 over all utterances and runs, and the word error rate
against the transcripts (TRANSCRIPTS.tsv next to the recordings).
"""

from __future__ import annotations

import argparse
import re
import sys
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stats import pct

from voicebot.asr.whisper import WhisperAsr

REPO = Path(__file__).resolve().parents[1]
AUDIO_DIRS = [REPO.parent / "shared" / "testdata" / "audio", REPO / "tests" / "data" / "audio"]


def utterances(folder: Path) -> list[tuple[str, str, bytes, int]]:
    out = []
    for line in (folder / "TRANSCRIPTS.tsv").read_text().splitlines():
        pattern, _, text = line.partition("\t")
        if not text or text.startswith("(") or text.startswith("DTMF"):
            continue
        name = pattern.replace("{s16,ulaw}", "s16")
        if not (folder / name).is_file():
            continue
        with wave.open(str(folder / name)) as w:
            out.append((name, text, w.readframes(w.getnframes()), w.getframerate()))
    return out


DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def words(text: str) -> list[str]:
    """Lower-case words; digits spelled out one by one ("4719" and "four seven one nine" match)."""
    out: list[str] = []
    for w in re.findall(r"[a-z0-9']+", text.lower()):
        out += [DIGITS[int(c)] for c in w] if w.isdigit() else [w]
    return out


def wer(ref: list[str], hyp: list[str]) -> tuple[int, int]:
    """(edit distance, reference length) over words."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=float, nargs="+", default=[30, 15, 10])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--model-dir", type=Path, default=REPO / "var" / "models" / "whisper-base")
    args = ap.parse_args()
    folder = next(d for d in AUDIO_DIRS if (d / "TRANSCRIPTS.tsv").is_file())
    items = utterances(folder)
    print(f"{len(items)} utterances from {folder}, {args.threads} thread(s), {args.runs} runs")
    print(f"{'window':>7} {'p50 s':>7} {'p95 s':>7} {'WER':>6}  texts")
    for window in args.windows:
        asr = WhisperAsr(args.model_dir, threads=args.threads, min_window_s=window)
        times: list[float] = []
        errors = total = 0
        texts = []
        for _ in range(args.runs):
            for _name, _ref, pcm, rate in items:
                result = asr.transcribe(pcm, rate)
                times.append(result.decode_s)
            texts = [asr.transcribe(pcm, rate).text for _n, _r, pcm, rate in items]
        for (_name, ref, _pcm, _rate), hyp in zip(items, texts, strict=True):
            e, n = wer(words(ref), words(hyp))
            errors, total = errors + e, total + n
        print(f"{window:>6g}s {pct(times, 50):>7.3f} {pct(times, 95):>7.3f} {errors / total:>6.1%}  {texts}")


if __name__ == "__main__":
    main()
