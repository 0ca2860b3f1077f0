"""What batching and decoder threads buy one Whisper model: the figures behind the speech service's
decoders (one single-threaded decoder per core, sharing the waiting turns).

    .venv/bin/python bench/asr_batch.py            # the short prompts of tests/data/audio/short_prompts

Decodes four short recorded turns (2-3 s) with the Whisper backend (voicebot.asr.whisper) as: one
turn, batches of 2 and 4 on one model with 1 and 2 CPU threads, and two single-threaded decoders
with two turns each at the same time (WhisperModel's num_workers). Prints the mean of --runs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import time
import wave
from collections.abc import Callable
from pathlib import Path

from voicebot.asr.whisper import WhisperAsr

REPO = Path(__file__).resolve().parents[1]
TURNS = ["espeak_16_8k_s16.wav", "espeak_02_8k_s16.wav", "hibari_12_8k_s16.wav", "piper_01_8k_s16.wav"]


def timed(fn: Callable[[], object], runs: int) -> float:
    fn()  # the first decode of a shape is slower: not counted
    t0 = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - t0) / runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--model-dir", type=Path, default=REPO / "var" / "models" / "whisper-base")
    args = ap.parse_args()
    turns = []
    for name in TURNS:
        with wave.open(str(REPO / "tests" / "data" / "audio" / "short_prompts" / name)) as w:
            turns.append((w.readframes(w.getnframes()), w.getframerate(), ""))
    for threads in (1, 2):
        asr = WhisperAsr(args.model_dir, threads=threads)
        for size in (1, 2, 4):
            t = timed(lambda asr=asr, size=size: asr.transcribe_many(turns[:size]), args.runs)
            print(f"{size} turn(s) in one batch, {threads} thread(s): {t:.3f} s")
    two = WhisperAsr(args.model_dir, threads=1, workers=2)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:

        def both() -> None:
            a = pool.submit(two.transcribe_many, turns[:2])
            b = pool.submit(two.transcribe_many, turns[2:])
            a.result()
            b.result()

        print(f"4 turns as 2 + 2 on two single-threaded decoders: {timed(both, args.runs):.3f} s")


if __name__ == "__main__":
    main()
