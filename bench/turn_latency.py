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
final, decision, TTS first audio and reply on the wire; memory (RSS) of the call workers, idle
and at peak, and of everything per concurrent call; CPU of the whole process tree per call while
calls are up, and to replace a call's worker between rounds (--json output feeds `voicebot capacity`).

Prints p50/p95/p99 of each and how many calls reached the sales queue. Targets (4 calls on 2 cores):
greeting <= 150 ms p95, turn gap <= 900 ms p95, barge-in stop <= 200 ms p95, no gaps.

    --uncached        the greeting is three sentences rendered per call (never in the prompt cache):
                      the caller barges in while the TTS is still synthesising it
    --kill-at S       S seconds after a round's calls are answered, kill -9 the call worker of
                      --kill-per-round of them (default 1; mid-menu) and measure the time to resumed
                      audio (the apology) as the caller hears it and as the system logs it (worker
                      died -> replaced -> apology on the wire)
"""

from __future__ import annotations

import argparse
import contextlib
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

from procs import tree_cpu_s  # noqa: E402
from stats import pct  # noqa: E402
from support.net import free_port, free_port_block, wait_sip  # noqa: E402
from support.peers import PjsuaPeer, call_bot, queue_peer  # noqa: E402
from support.speech import spoken_wav  # noqa: E402

from voicebot.tts.base import synthesize  # noqa: E402
from voicebot.tts.resample import to_call_pcm  # noqa: E402
from voicebot.vad.classifier import level_dbfs  # noqa: E402

UTTERANCE = "I would like to talk to someone in sales, please."
# Three sentences with a placeholder: rendered for each call, so never taken from the prompt cache.
UNCACHED_GREETING = (
    "Hello {caller}, and thank you for calling voicebot today. We are glad to help you with anything "
    "about your account, your orders or your deliveries. Please tell me in a few words what you are "
    "calling about."
)
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


def analyse(
    recording: Path, onset: float, end: float, play_at: float, kill_at: float = 0.0
) -> dict[str, float]:
    with wave.open(str(recording)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    loud = audible(samples)
    out: dict[str, float] = {}
    if not loud:
        return out
    out["greeting_ms"] = loud[0] * 1000
    if kill_at:
        # The bot's audio stops at the kill (mid-prompt); the first audio after a silence that
        # began there is the apology of the worker that took over.
        after = [t for t in loud if t > kill_at]
        resumed = next((b for a, b in zip([kill_at, *after], after, strict=False) if b - a > 0.15), None)
        if resumed is not None:
            out["resumed_audio_ms"] = (resumed - kill_at) * 1000
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


def kill_workers(
    log: Path, first: int, count: int, kill_at: float, limit: int = 1
) -> list[tuple[str, float]]:
    """kill -9 the call workers of ``limit`` of the answered calls ``first``..``first+count-1`` (in
    log order), ``kill_at`` s after they were answered."""
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(lines) < first + count:
        lines = [line for line in log.read_text(errors="replace").splitlines() if "call.answered" in line]
        time.sleep(0.02)
    time.sleep(kill_at)
    out = []
    for line in lines[first : first + count][:limit]:
        pid = re.search(r"worker_pid=(\d+)", line)
        call = re.search(r"call_id=(\w+)", line)
        if pid and call:
            try:
                os.kill(int(pid.group(1)), signal.SIGKILL)
                out.append((call.group(1), kill_at))
            except ProcessLookupError:
                pass
    return out


def resumed_on_the_wire(log: Path, records: Path) -> list[float]:
    """The system's view, per resumed call: worker died -> worker replaced (UA log) + replaced -> the
    apology's first audio on the wire (the resumed worker's first turn record)."""
    from datetime import datetime

    died: dict[str, datetime] = {}
    replaced: dict[str, datetime] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"^(\S+?)Z? .*call\.(worker_died|worker_replaced) .*?\bcall_id=(\w+)", line)
        if m:
            (died if m.group(2) == "worker_died" else replaced)[m.group(3)] = datetime.fromisoformat(
                m.group(1)
            )
    out = []
    for record in records.glob("*-w2.json"):
        data = json.loads(record.read_text())
        call = data["call"]["call_id"]
        first = next((e for e in data["events"] if e["kind"] == "turn" and e["turn"] == 0), None)
        if call in died and call in replaced and first is not None:
            out.append((replaced[call] - died[call]).total_seconds() * 1000 + first["greeting_ms"])
    return out


def rss_mb_by_kind(field: str = "VmRSS") -> dict[str, list[float]]:
    """Memory (MB) of every voicebot process on this machine, by kind: ``VmRSS`` (resident, pages
    shared with other processes counted in each) or ``Pss`` (shared pages divided among their
    sharers: what the processes cost together; call workers forked from the fork server share most
    of theirs)."""
    out: dict[str, list[float]] = {
        "call_worker": [], "ua_worker": [], "supervisor": [], "infer": [], "fork_server": [],
    }  # fmt: skip
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (proc / "status").read_text()
            source = (proc / "smaps_rollup").read_text() if field == "Pss" and "voicebot" in cmd else status
        except OSError:
            continue
        forked = "voicebot.callworker.forkserver" in cmd
        forked_worker = False
        if forked:  # the server itself, or a call worker it forked (its parent is the server)
            ppid = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "0")
            with contextlib.suppress(OSError):
                forked_worker = (
                    b"voicebot.callworker.forkserver" in (Path("/proc") / ppid / "cmdline").read_bytes()
                )
        kind = (
            "call_worker" if "voicebot.callworker.main" in cmd or (forked and forked_worker)
            else "fork_server" if forked
            else "ua_worker" if "voicebot.ua.worker" in cmd
            else "supervisor" if "voicebot.cli run" in cmd
            else "infer" if "voicebot.inference.server" in cmd
            else None
        )  # fmt: skip
        if kind is None:
            continue
        key = "VmRSS:" if field == "VmRSS" else "Pss:"
        value = next((line.split()[1] for line in source.splitlines() if line.startswith(key)), "0")
        out[kind].append(int(value) / 1024)
    return out


class MemoryWatch(threading.Thread):
    """Samples voicebot's memory every 0.5 s: the peak total, and each call worker's peak."""

    def __init__(self) -> None:
        super().__init__(name="memory-watch", daemon=True)
        self.stop = threading.Event()
        self.peak_total = 0.0
        self.peak_pss = 0.0
        self.worker_peak = 0.0
        self.worker_pss_peak = 0.0
        self.idle_worker: list[float] = []

    def run(self) -> None:
        while not self.stop.wait(0.5):
            kinds = rss_mb_by_kind()
            self.peak_total = max(self.peak_total, sum(sum(v) for v in kinds.values()))
            self.worker_peak = max([self.worker_peak, *kinds["call_worker"]])
            pss = rss_mb_by_kind("Pss")
            self.peak_pss = max(self.peak_pss, sum(sum(v) for v in pss.values()))
            self.worker_pss_peak = max([self.worker_pss_peak, *pss["call_worker"]])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=4, help="concurrent calls per round (<= 4 per UA worker)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--asr-threads", type=int, default=1, help="decoder threads per call worker (--inference off)"
    )
    ap.add_argument(
        "--inference",
        choices=["local", "off"],
        default="local",
        help="local: the node's speech service (default); off: models in every call worker",
    )
    ap.add_argument(
        "--fork-server",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fork call workers from the fork server (workers.fork_server, the default: true)",
    )
    ap.add_argument("--json", type=Path)
    ap.add_argument("--uncached", action="store_true", help="a greeting synthesised during each call")
    ap.add_argument("--kill-at", type=float, default=0.0, help="kill -9 call workers this long into the call")
    ap.add_argument(
        "--kill-per-round", type=int, default=1, help="how many of each round's calls (--kill-at)"
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="voicebot-turns-"))
    utterance = work / "ask_sales.wav"
    onset, end = render(utterance)
    example = (REPO / "dialplans" / "example.yaml").read_text()
    greeting = "Hello, this is voicebot."
    if args.uncached:
        example = example.replace(f"say: {greeting}", f"say: {UNCACHED_GREETING}")
        greeting = UNCACHED_GREETING.replace("{caller}", "caller")
    plan = work / "plan.yaml"
    plan.write_text(example)
    # The caller speaks over a stretch of the first prompts (greeting, then the menu's prompt).
    menu = "Say sales or support, or press 1 for sales, 2 for support, or hash to hang up."
    play_at = barge_point(f"{greeting} {menu}", onset)
    if args.kill_at:
        play_at = args.kill_at + 6.0  # after the kill and the resumed menu prompt's start
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
        "VOICEBOT_CONSOLE__LISTEN": "",  # no admin console while measuring
        "VOICEBOT_CALL__RECORD_DIR": str(work / "records"),
        "VOICEBOT_ASR__THREADS": str(args.asr_threads),
        "VOICEBOT_INFERENCE__MODE": args.inference,
        "VOICEBOT_WORKERS__FORK_SERVER": "true" if args.fork_server else "false",
        "VOICEBOT_INFERENCE__LISTEN": f"127.0.0.1:{free_port()}",
        "VOICEBOT_ASR__MODEL_DIR": str(REPO / "var" / "models"),
        "VOICEBOT_QUEUES": json.dumps({q: f"sip:{q}@127.0.0.1:{queue_port}" for q in ("sales", "support")}),
        "VOICEBOT_ROUTES": json.dumps([{"match": "*", "dialplan": str(plan)}]),
    }
    log = (work / "voicebot.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "voicebot.cli", "run"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    results: list[dict[str, float]] = []
    kills: list[tuple[str, float]] = []  # (call id, time of the kill in the caller's recording)
    transferred = referred = 0
    refused: list[int] = []  # calls the bot did not answer (their SIP final code)
    talking = [0.0, 0.0]  # CPU s, wall s while a round's calls are up
    refilling = [0.0, 0.0]  # the same between rounds: replacing each ended call's worker
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
            if r:
                # Each call's worker is replaced after the call; four loading Whisper at once take
                # several seconds on 2 cores: let the pool refill so rounds measure turns, not spawns.
                cpu0, t0 = tree_cpu_s(server.pid), time.monotonic()
                time.sleep(10)
                refilling[0] += tree_cpu_s(server.pid) - cpu0
                refilling[1] += time.monotonic() - t0
            cpu0, t0 = tree_cpu_s(server.pid), time.monotonic()
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
            if args.kill_at:
                kills += kill_workers(
                    work / "voicebot.log", args.calls * r, args.calls, args.kill_at, args.kill_per_round
                )
            for peer, rec in callers:
                res = peer.result(timeout=60)
                if not res.get("confirmed") and not rec.exists():
                    refused.append(int(res.get("final_code") or 0))  # e.g. 503: no free worker yet
                    continue
                referred += int(str(res.get("refer_to") or "").startswith("<sip:sales@"))
                transferred += int(res.get("transferred_code") == 200)
                # The REFER names the call (X-Voicebot-Call-ID): only killed calls have a resumption.
                ref = re.search(r"X-Voicebot-Call-ID=(\w+)", str(res.get("refer_to") or ""))
                killed = ref is not None and any(call == ref.group(1) for call, _ in kills)
                results.append(analyse(rec, onset, end, play_at, args.kill_at if killed else 0.0))
            talking[0] += tree_cpu_s(server.pid) - cpu0
            talking[1] += time.monotonic() - t0
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
        "not_answered": f"{len(refused)} (SIP {sorted(set(refused))})" if refused else 0,
        "referred_to_sales": f"{referred}/{len(results)}",
        "queue_answered": f"{transferred}/{len(results)}",
    }
    if args.kill_at:
        vals = resumed_on_the_wire(work / "voicebot.log", work / "records")
        summary["workers_killed"] = len(kills)
        summary["resumed (system) ms"] = {
            "n": len(vals),
            **{f"p{q}": round(pct(vals, q)) if vals else None for q in (50, 95, 99)},
        }
    for key in ("greeting_ms", "barge_stop_ms", "turn_gap_ms", "resumed_audio_ms"):
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
        "infer_service": round(max(idle["infer"], default=0)),
        "fork_server": round(max(idle["fork_server"], default=0)),
        "peak_total": round(watch.peak_total),
        "peak_total_per_call": round(watch.peak_total / args.calls),
        # PSS: shared pages divided among their sharers (RSS counts them in every process)
        "call_worker_pss_peak": round(watch.worker_pss_peak),
        "peak_pss_total": round(watch.peak_pss),
        "peak_pss_per_call": round(watch.peak_pss / args.calls),
    }
    # CPU of everything voicebot runs (edge, UA workers, call workers), for capacity planning
    # (`voicebot capacity`): cores per concurrent call while calls are up, and the CPU seconds it takes
    # to replace an ended call's worker (a fixed cost per call, spread over how long calls last).
    summary["cpu"] = {
        "cores": os.cpu_count(),
        "cores_per_call_talking": round(talking[0] / talking[1] / args.calls, 3) if talking[1] else None,
        "worker_start_cpu_s_per_call": (
            round(refilling[0] / (args.calls * (args.rounds - 1)), 2) if args.rounds > 1 else None
        ),
        "call_s": round(talking[1] / args.rounds, 1),
    }
    summary["work_dir"] = str(work)
    for key, value in summary.items():
        print(f"{key:>24}: {value}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
