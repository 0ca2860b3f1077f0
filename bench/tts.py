#!/usr/bin/env python3
"""TTS backends side by side: load time, first-audio latency and real-time factor.

    .venv/bin/python bench/tts.py                       # every backend that can start here
    .venv/bin/python bench/tts.py --backend piper --runs 3
    .venv/bin/python bench/tts.py --coqui-model ~/my-vits   # a coqui model dir (config.json + .pth)

Each backend runs in a fresh process (so load includes importing its engine, as in a call worker
that starts cold), with one thread where the backend takes a thread count. Reported:

* load: ``create(name)`` in that process, and its peak RSS after everything ran;
* first: the first synthesis after load (ONNX/torch warm-up), first audio of a one-sentence prompt;
* first audio p50/p95: from ``stream(text)`` to its first chunk, over the prompts below (one to three
  sentences each) times --runs; this is what a caller waits for after the bot decides to speak;
* RTF p50/p95: whole-prompt synthesis time / audio duration, per prompt.

coqui runs only with the optional extra installed. No coqui voice ships offline: without
--coqui-model the bench builds a randomly initialised VITS of coqui's default size, so its speed
stands for a real VITS voice of that architecture although it says nothing intelligible.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from stats import pct  # noqa: E402

from voicebot.tts.base import TtsBackend, TtsError, create  # noqa: E402

BACKENDS = ["hibari", "piper", "espeak", "coqui"]
THREADED = {"hibari", "piper", "coqui"}  # take a thread count; espeak-ng is a process per sentence
PROMPTS = [
    "Thank you for calling Acme support.",
    "Hello there. Press one for sales.",
    "Please hold while I transfer you to an agent.",
    "I did not catch that. Could you say it again?",
    "Your balance is forty two dollars and seventeen cents.",
    "Goodbye.",
    "For billing, say billing. For anything else, say agent.",
    "I can help with orders, returns and deliveries. What would you like to do?",
    "Your appointment is on Tuesday at three thirty in the afternoon. Is that still convenient?",
    "One moment please. I am looking up your account. This should only take a few seconds.",
]


def build_vits(folder: Path) -> Path:
    """A randomly initialised VITS of coqui's default size, saved as coqui's trainer saves one."""
    import torch
    from trainer.io import copy_model_files, save_checkpoint
    from TTS.tts.configs.vits_config import VitsArgs, VitsConfig
    from TTS.tts.models.vits import Vits

    torch.manual_seed(0)
    config = VitsConfig(
        model_args=VitsArgs(init_discriminator=False), use_phonemes=False, text_cleaner="basic_cleaners"
    )
    model = Vits(config)
    copy_model_files(config, folder, {})
    save_checkpoint(config, model, folder, current_step=0, epoch=0)
    return folder


def measure(name: str, options: dict[str, Any], runs: int) -> dict[str, Any]:
    """In this process: load ``name``, then time its prompts."""
    t0 = time.perf_counter()
    backend = create(name, **options)
    load_s = time.perf_counter() - t0
    first_ms = first_audio(backend, "Welcome.")[0] * 1000
    firsts: list[float] = []
    rtfs: list[float] = []
    for _ in range(runs):
        for text in PROMPTS:
            first, total, samples = first_audio(backend, text)
            firsts.append(first)
            rtfs.append(total / (samples / backend.sample_rate))
    return {
        "backend": name,
        "voice": backend.voice,
        "rate": backend.sample_rate,
        "load_s": load_s,
        "first_ms": first_ms,
        "first_audio_ms": [f * 1000 for f in firsts],
        "rtf": rtfs,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def first_audio(backend: TtsBackend, text: str) -> tuple[float, float, int]:
    """(seconds to the first chunk, seconds for all of it, samples)."""
    t0 = time.perf_counter()
    first = 0.0
    samples = 0
    for chunk in backend.stream(text):
        if not samples:
            first = time.perf_counter() - t0
        samples += chunk.size
    return first, time.perf_counter() - t0, samples


def run_child(name: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any] | str:
    """Measure one backend in a fresh interpreter; a string says why it could not run."""
    cmd = [sys.executable, __file__, "--child", name, "--runs", str(args.runs)]
    if name == "coqui":
        model = args.coqui_model
        if model is None:
            if importlib.util.find_spec("TTS") is None:
                return "skipped: the optional extra is not installed (pip install 'voicebot[coqui]')"
            # built in its own process: the measured one loads the model cold, as a call worker would
            model = tmp / "random-vits"
            build = [sys.executable, __file__, "--build-vits", str(model)]
            built = subprocess.run(build, capture_output=True, text=True, timeout=600)
            if built.returncode != 0:
                return "skipped: " + (built.stderr.strip().splitlines() or ["building a VITS failed"])[-1]
        cmd += ["--coqui-model", str(model)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return (out.stderr.strip().splitlines() or ["failed"])[-1]
    result: dict[str, Any] | str = json.loads(lines[-1])
    return result


def child(name: str, args: argparse.Namespace) -> int:
    options: dict[str, Any] = {"threads": 1} if name in THREADED else {}
    if name == "coqui":
        options["model_dir"] = args.coqui_model
    try:
        result = measure(name, options, args.runs)
    except TtsError as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(result))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", action="append", choices=BACKENDS, help="repeat; default: all")
    ap.add_argument("--runs", type=int, default=3, help="passes over the prompts")
    ap.add_argument("--coqui-model", type=Path, help="coqui model dir (default: a random-init VITS)")
    ap.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    ap.add_argument("--build-vits", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args)
    if args.build_vits:
        build_vits(args.build_vits)
        return 0

    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, load average {load:.1f}; {len(PROMPTS)} prompts x {args.runs} runs")
    print(
        f"{'backend':<8} {'voice':<18} {'rate':>6} {'load':>7} {'first':>7} "
        f"{'1st audio p50/p95':>18} {'RTF p50/p95':>13} {'RSS':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backend or BACKENDS:
            print_row(name, run_child(name, args, Path(tmp)))
    return 0


def print_row(name: str, r: dict[str, Any] | str) -> None:
    if isinstance(r, str):
        print(f"{name:<8} {r}")
        return
    fa, rtf = r["first_audio_ms"], r["rtf"]
    print(
        f"{r['backend']:<8} {r['voice'][:18]:<18} {r['rate']:>6} {r['load_s']:>6.2f}s "
        f"{r['first_ms']:>5.0f}ms {pct(fa, 50):>7.0f} / {pct(fa, 95):>4.0f} ms "
        f"{pct(rtf, 50):>6.3f} / {pct(rtf, 95):.3f} {r['rss_mb']:>5.0f}MB"
    )


if __name__ == "__main__":
    sys.exit(main())
