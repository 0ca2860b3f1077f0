#!/usr/bin/env python3
"""Turn latency on real calls, measured on what callers hear.

    .venv/bin/python bench/turn_latency.py --calls 4 --rounds 3

Starts `voicebot run` (one UA worker per 4 calls, ASR on) and a pjsua2 queue peer, then places
--calls concurrent pjsua2 calls per round. Each caller records the bot and, in the middle of a spoken
stretch of the greeting, says "I would like to talk to someone in sales, please." (hibari, 8 kHz).
From each caller's recording:

* greeting first audio: answer -> first audible bot audio;
* barge-in stop: caller speech onset -> bot audio stops;
* turn gap: end of caller speech -> first audible reply ("Transferring you to sales.");
* gaps in the bot's audio: 20 ms frames of silence the UA workers sent inside a prompt (call.ended).

Also, from the call records (the system's own turn metrics, ms after the VAD's end of speech): ASR
final, decision, TTS first audio and reply on the wire; and memory (RSS) of the call workers, idle
and at peak, and of everything per concurrent call.

Prints p50/p95/p99 of each and how many calls reached the sales queue. Targets (issue 4, 4 calls):
greeting <= 150 ms p95, turn gap <= 900 ms p95, barge-in stop <= 200 ms p95.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO), str(REPO / "bench")]

from stats import pct  # noqa: E402
from support.net import free_port, free_port_block, wait_sip  # noqa: E402
from support.peers import PjsuaPeer, call_bot, queue_peer  # noqa: E402
from support.speech import spoken_wav  # noqa: E402

from voicebot.tts.base import synthesize  # noqa: E402
from voicebot.tts.resample import to_call_pcm  # noqa: E402
from voicebot.vad.classifier import level_dbfs  # noqa: E402

UTTERANCE = "I would like to talk to someone in sales, please."
FRAME = 160  # samples per 20 ms at 8 kHz


def barge_point(greeting: str, onset: float) -> float:
    """When to start the caller's WAV so that their speech begins in the middle of a stretch of the
    greeting that is audible for at least 600 ms more: only then does 'the bot stopped' mean something."""
    from voicebot.tts.base import create as create_tts

    backend = create_tts("hibari")
    pcm = to_call_pcm(synthesize(backend, greeting), backend.sample_rate, 8000)
    loud = set(round(t, 2) for t in audible(np.frombuffer(pcm, dtype="<i2")))
    for start in sorted(loud):
        if start > 1.0 and sum(round(start + i * 0.02, 2) in loud for i in range(30)) >= 26:
            return round(start - onset, 2)
    raise RuntimeError("the greeting has no 600 ms of (nearly) continuous speech after 1 s")


def render(path: Path) -> tuple[float, float]:
    """Write the caller's utterance; return (speech onset, speech end) in seconds within the file."""
    pcm = spoken_wav(path, UTTERANCE)
    loud = audible(np.frombuffer(pcm, dtype="<i2"))
    return loud[0], loud[-1] + 0.02


def audible(samples: np.ndarray, floor_dbfs: float = -40.0) -> list[float]:
    """Start times of the 20 ms frames above the floor."""
    return [
        i / 8000
        for i in range(0, samples.size - FRAME, FRAME)
        if level_dbfs(samples[i : i + FRAME].astype("<i2").tobytes()) > floor_dbfs
    ]


def analyse(recording: Path, onset: float, end: float, play_at: float) -> dict[str, float]:
    with wave.open(str(recording)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    loud = audible(samples)
    out: dict[str, float] = {}
    if not loud:
        return out
    out["greeting_ms"] = loud[0] * 1000
    said, stopped = play_at + onset, play_at + end
    # barge-in: the greeting was audible for 600 ms past `said`; when did the caller stop hearing it?
    run = [t for t in loud if said - 0.1 <= t < said + 1.0]
    last = said
    for t in run:
        if t - last > 0.15:  # gaps between syllables are shorter than this
            break
        last = t
    out["barge_stop_ms"] = (last + 0.02 - said) * 1000
    reply = [t for t in loud if t >= stopped]
    if reply:
        out["turn_gap_ms"] = (reply[0] - stopped) * 1000
    return out


def rss_mb_by_kind() -> dict[str, list[float]]:
    """Resident memory (MB) of every voicebot process on this machine, by kind."""
    out: dict[str, list[float]] = {"call_worker": [], "ua_worker": [], "supervisor": []}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (proc / "status").read_text()
        except OSError:
            continue
        kind = (
            "call_worker" if "voicebot.callworker.main" in cmd
            else "ua_worker" if "voicebot.ua.worker" in cmd
            else "supervisor" if "voicebot.cli run" in cmd
            else None
        )  # fmt: skip
        if kind is None:
            continue
        rss = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), "0")
        out[kind].append(int(rss) / 1024)
    return out


class MemoryWatch(threading.Thread):
    """Samples voicebot's memory every 0.5 s: the peak total, and each call worker's peak."""

    def __init__(self) -> None:
        super().__init__(name="memory-watch", daemon=True)
        self.stop = threading.Event()
        self.peak_total = 0.0
        self.worker_peak = 0.0
        self.idle_worker: list[float] = []

    def run(self) -> None:
        while not self.stop.wait(0.5):
            kinds = rss_mb_by_kind()
            self.peak_total = max(self.peak_total, sum(sum(v) for v in kinds.values()))
            self.worker_peak = max([self.worker_peak, *kinds["call_worker"]])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=4, help="concurrent calls per round (<= 4 per UA worker)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--asr-threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="voicebot-turns-"))
    utterance = work / "ask_sales.wav"
    onset, end = render(utterance)
    from voicebot.config import CallSettings

    play_at = barge_point(CallSettings().greeting, onset)
    port, queue_port = free_port(), free_port()
    k = max(1, math.ceil(args.calls / 4))
    env = {
        **os.environ,
        "VOICEBOT_SIP__PORT": str(port),
        "VOICEBOT_SIP__LISTEN": "127.0.0.1",
        "VOICEBOT_SIP__RTP_PORT_START": str(free_port_block(k * 40)),
        "VOICEBOT_SIP__RTP_PORTS_PER_WORKER": "40",
        "VOICEBOT_WORKERS__UA_WORKERS": str(k),
        "VOICEBOT_WORKERS__UA_BASE_PORT": str(free_port_block(k)),
        "VOICEBOT_RUN_DIR": str(work / "run"),
        "VOICEBOT_CALL__RECORD_DIR": str(work / "records"),
        "VOICEBOT_ASR__THREADS": str(args.asr_threads),
        "VOICEBOT_ASR__MODEL_DIR": str(REPO / "var" / "models"),
        "VOICEBOT_QUEUES": json.dumps({"sales": f"sip:sales@127.0.0.1:{queue_port}"}),
    }
    log = (work / "voicebot.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "voicebot.cli", "run"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    results: list[dict[str, float]] = []
    transferred = referred = 0
    try:
        wait_sip(port, timeout=120)
        while (work / "voicebot.log").read_text(errors="replace").count("ua.ready") < k:
            time.sleep(0.2)
        time.sleep(6 if k > 1 else 0.5)
        idle = rss_mb_by_kind()  # the pool is warm: models loaded, no call yet
        watch = MemoryWatch()
        watch.start()
        queue = queue_peer(work, queue_port, "--hold", "0.5", "--duration", str(40 * args.rounds))
        for r in range(args.rounds):
            callers: list[tuple[PjsuaPeer, Path]] = []
            for i in range(args.calls):
                rec = work / f"heard-{r}-{i}.wav"
                callers.append(
                    (
                        call_bot(
                            work,
                            port,
                            "--play",
                            str(utterance),
                            "--play-at",
                            str(play_at),
                            "--record",
                            str(rec),
                            "--duration",
                            "25",
                            name=f"caller-{r}-{i}",
                        ),
                        rec,
                    )
                )
            for peer, rec in callers:
                res = peer.result(timeout=60)
                referred += int(str(res.get("refer_to") or "").startswith("<sip:sales@"))
                transferred += int(res.get("transferred_code") == 200)
                results.append(analyse(rec, onset, end, play_at))
        queue.kill()
        watch.stop.set()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=90)
        log.close()
    summary: dict[str, object] = {
        "calls": args.calls,
        "rounds": args.rounds,
        "asr_threads": args.asr_threads,
        "cores": os.cpu_count(),
        # The bot's decision: REFER to the sales queue. The test queue is one pjsua2 process, which
        # takes 4 calls at once (PJSUA_MAX_CALLS): past 4 concurrent calls some transfers get 486.
        "referred_to_sales": f"{referred}/{len(results)}",
        "queue_answered": f"{transferred}/{len(results)}",
    }
    for key in ("greeting_ms", "barge_stop_ms", "turn_gap_ms"):
        vals = [r[key] for r in results if key in r]
        summary[key] = {
            "n": len(vals),
            **{f"p{q}": round(pct(vals, q)) if vals else None for q in (50, 95, 99)},
        }
    # The system's own view of each turn (call records): ms after the end of the caller's speech.
    stages: dict[str, list[float]] = {}
    for record in (work / "records").glob("*.json"):
        for ev in json.loads(record.read_text())["events"]:
            if ev["kind"] == "turn" and ev["turn"] > 0:
                for key, value in ev.items():
                    if key.endswith("_ms") and value is not None:
                        stages.setdefault(key, []).append(value)
    for key in ("asr_final_ms", "decision_ms", "tts_first_audio_ms", "reply_out_ms"):
        vals = stages.get(key, [])
        summary[f"stage {key}"] = {
            "n": len(vals),
            **{f"p{q}": round(pct(vals, q)) if vals else None for q in (50, 95, 99)},
        }
    # Gaps in the bot's audio: silent frames sent inside a prompt (the UA worker counts them per call).
    ended = [
        line
        for line in (work / "voicebot.log").read_text(errors="replace").splitlines()
        if "call.ended" in line
    ]
    gaps = [int(m.group(1)) for line in ended if (m := re.search(r"\bunderruns=(\d+)", line))]
    summary["playout_gaps"] = {"calls": len(gaps), "with_gaps": sum(g > 0 for g in gaps), "frames": sum(gaps)}
    summary["memory_mb"] = {
        "idle_call_worker": round(max(idle["call_worker"], default=0)),
        "call_worker_peak": round(watch.worker_peak),
        "ua_worker": round(max(idle["ua_worker"], default=0)),
        "peak_total": round(watch.peak_total),
        "peak_total_per_call": round(watch.peak_total / args.calls),
    }
    summary["work_dir"] = str(work)
    for key, value in summary.items():
        print(f"{key:>24}: {value}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
