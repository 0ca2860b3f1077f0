"""The speech service against in-process decoding: same words, and what batching buys under load.

    .venv/bin/python bench/asr_service.py                     # concurrency 1, 4, 8
    .venv/bin/python bench/asr_service.py --concurrency 1 8 --threads 2

The project's recorded test utterances, cut as a call worker cuts a turn (bench/asr_window.py: 60
cuts), are decoded (1) in this process by the Whisper backend, one at a time on one thread, as a
call worker without the service did, and (2) by a `voicebot infer` this script starts, through the
call workers' client (voicebot.inference.client), N requests at a time. Prints the word error rate,
each request's latency p50/p95 and the throughput (turns decoded per second).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from asr_window import AUDIO_DIRS, speech_bounds, utterances, wer, words
from stats import pct
from support.net import free_port, wait_http_ok

from voicebot.asr.whisper import WhisperAsr
from voicebot.inference.client import ServiceAsr
from voicebot.inference.providers import ProviderConfig

REPO = Path(__file__).resolve().parents[1]


def cuts() -> list[tuple[str, bytes, int]]:
    folder = next(d for d in AUDIO_DIRS if (d / "TRANSCRIPTS.tsv").is_file())
    out = []
    for _name, ref, pcm, rate in utterances(folder):
        bounds = speech_bounds(pcm, rate)
        if bounds is None:
            continue
        padded = pcm + bytes(rate * 2)
        for lead in (0, 60, 120, 180, 240, 300):
            for tail in (400, 700):
                a = max(0, int((bounds[0] - lead / 1000) * rate)) * 2
                b = int((bounds[1] + tail / 1000) * rate) * 2
                out.append((ref, padded[a:b], rate))
    return out


def report(label: str, refs: list[str], texts: list[str], latencies: list[float], wall: float) -> None:
    errors = total = 0
    for ref, text in zip(refs, texts, strict=True):
        e, n = wer(words(ref), words(text))
        errors, total = errors + e, total + n
    print(
        f"{label:<34} WER {errors / total:6.1%}   latency p50 {pct(latencies, 50):.3f} s"
        f"  p95 {pct(latencies, 95):.3f} s   {len(texts) / wall:5.2f} turns/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--threads", type=int, default=0, help="the service's decoders (0: one per core)")
    ap.add_argument("--model-dir", type=Path, default=REPO / "var" / "models")
    args = ap.parse_args()
    items = cuts()
    refs = [ref for ref, _, _ in items]
    print(f"{len(items)} turn cuts, {os.cpu_count()} cores")

    local = WhisperAsr(args.model_dir / "whisper-base", threads=1)
    local.transcribe(items[0][1], items[0][2])  # the first decode of a fresh model is slow
    t0 = time.perf_counter()
    results = [local.transcribe(pcm, rate) for _, pcm, rate in items]
    report("in-process, one at a time", refs, [r.text for r in results], [r.decode_s for r in results],
           time.perf_counter() - t0)  # fmt: skip
    del local

    port = free_port()
    env = {**os.environ, "VOICEBOT_ASR__MODEL_DIR": str(args.model_dir), "VOICEBOT_METRICS__LISTEN": "",
           "VOICEBOT_INFERENCE__THREADS": str(args.threads), "VOICEBOT_TTS__BACKEND": "espeak"}  # fmt: skip
    service = subprocess.Popen(
        [sys.executable, "-m", "voicebot.cli", "infer", "--listen", f"127.0.0.1:{port}"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        if not wait_http_ok(f"http://127.0.0.1:{port}/readyz"):
            raise SystemExit("the service did not start")
        url = f"http://127.0.0.1:{port}/v1"
        asr = ServiceAsr([ProviderConfig(name="bench", urls=[url], voicebot=True, timeout_s=60)])
        for n in args.concurrency:
            with concurrent.futures.ThreadPoolExecutor(n) as pool:
                t0 = time.perf_counter()
                results = list(pool.map(lambda item: asr.transcribe(item[1], item[2]), items))
                wall = time.perf_counter() - t0
            report(
                f"service, {n} at a time",
                refs,
                [r.text for r in results],
                [r.decode_s for r in results],
                wall,
            )
    finally:
        service.terminate()
        service.wait(10)


if __name__ == "__main__":
    main()
