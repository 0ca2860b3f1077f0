"""Whisper's encoder window vs. decode time and words: 30 s (what faster-whisper always pads to) vs.
the shorter windows voicebot uses (voicebot.asr.whisper.window_frames).

    .venv/bin/python bench/asr_window.py                  # windows 30, 15, 10 s; 1 thread
    .venv/bin/python bench/asr_window.py --windows 30 10 8 --threads 2 --runs 5

Each utterance is cut the way the call worker cuts a turn, at several alignments: 0-300 ms of audio
before the speech and 400 or 700 ms after it (Whisper's early stops depend on them). Prints, per
window: decode time p50/p95, the word error rate against the transcripts (TRANSCRIPTS.tsv next to
the recordings), and how many decodes came out shorter than half the reference (early stops).
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
from voicebot.engine.listener import Listener, TurnEnded, TurnStarted

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


def speech_bounds(pcm: bytes, rate: int) -> tuple[float, float] | None:
    """Where the listener hears the (first) turn start and end, in seconds."""
    listener = Listener(rate)
    frame = rate // 50 * 2
    start = None
    for i in range(0, len(pcm) + rate * 2 - frame + 1, frame):
        chunk = pcm[i : i + frame] if i + frame <= len(pcm) else bytes(frame)
        for ev in listener.feed(chunk):
            if isinstance(ev, TurnStarted):
                start = ev.at
            elif isinstance(ev, TurnEnded) and start is not None:
                return start, ev.at
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=float, nargs="+", default=[30, 25, 20, 15, 12])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--leads-ms", type=int, nargs="+", default=[0, 60, 120, 180, 240, 300])
    ap.add_argument("--tails-ms", type=int, nargs="+", default=[400, 700])
    ap.add_argument("--model-dir", type=Path, default=REPO / "var" / "models" / "whisper-base")
    ap.add_argument(
        "--audio", type=Path, help="one recording instead (e.g. a caller WAV kept by turn_latency)"
    )
    ap.add_argument("--ref", default="", help="what is said in --audio")
    ap.add_argument("--hints", nargs="*", default=[], help="the step's options, as a call would pass them")
    args = ap.parse_args()
    folder = next(d for d in AUDIO_DIRS if (d / "TRANSCRIPTS.tsv").is_file())
    items = utterances(folder)
    if args.audio:
        folder = args.audio
        with wave.open(str(args.audio)) as w:
            items = [(args.audio.name, args.ref, w.readframes(w.getnframes()), w.getframerate())]
    cuts: list[tuple[str, bytes, int]] = []
    for _name, ref, pcm, rate in items:
        bounds = speech_bounds(pcm, rate)
        if bounds is None:
            continue
        padded = pcm + bytes(rate * 2)
        for lead in args.leads_ms:
            for tail in args.tails_ms:
                a = max(0, int((bounds[0] - lead / 1000) * rate)) * 2
                b = int((bounds[1] + tail / 1000) * rate) * 2
                cuts.append((ref, padded[a:b], rate))
    print(f"{len(cuts)} turn cuts from {folder}, {args.threads} thread(s)")
    print(f"{'window':>7} {'p50 s':>7} {'p95 s':>7} {'WER':>6} {'early stops':>12}")
    for window in args.windows:
        asr = WhisperAsr(args.model_dir, threads=args.threads, min_window_s=window)
        times: list[float] = []
        errors = total = short = 0
        for ref, pcm, rate in cuts:
            result = asr.transcribe(pcm, rate, args.hints)
            times.append(result.decode_s)
            e, n = wer(words(ref), words(result.text))
            errors, total = errors + e, total + n
            short += len(words(result.text)) < n / 2
        print(
            f"{window:>6g}s {pct(times, 50):>7.3f} {pct(times, 95):>7.3f} {errors / total:>6.1%} "
            f"{short:>5}/{len(cuts)}"
        )


if __name__ == "__main__":
    main()
