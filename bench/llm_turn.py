#!/usr/bin/env python3
"""Agent-turn latency on real calls with the local default LLM (llm.local: the bundled SmolLM2 on
llama-server, started by `voicebot run`).

    .venv/bin/python bench/llm_turn.py --calls 1 --rounds 4
    .venv/bin/python bench/llm_turn.py --calls 4 --rounds 3 --json bench/results/llm_turn-4.json

Each caller dials dialplans/assistant.yaml, waits for the welcome and the LLM's opening, then asks
"When do you close on Sunday?" (hibari, 8 kHz) twice, --gap seconds apart. From the call records
(the system's own turn clock, ms after the VAD's end of the caller's speech):

* reply out: end of caller speech -> the LLM reply's first audio on the wire (what the caller waits);
* asr: -> the recogniser's final text; first sentence: -> the LLM's first whole sentence (the
  decision); tts: -> its first synthesised audio;
* model first token: the LLM request -> its first token, as the client saw it (`llm_usage`);
* overhead on top of the model: reply out - model first token (recognition, the wait for a whole
  sentence, synthesis, playout: everything that is not the model's own first token).

Prints p50/p95 of each. Target (issue 12): reply out p95 <= 1.2 s at 4 calls on this machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO), str(REPO / "bench")]

from stats import pct  # noqa: E402
from support.net import free_port, free_port_block, wait_sip  # noqa: E402
from support.peers import PjsuaPeer, call_bot  # noqa: E402
from support.speech import spoken_wav  # noqa: E402

QUESTION = "When do you close on Sunday?"


def turns_of(record: dict[str, object]) -> list[dict[str, float]]:
    """Each LLM-decided turn's stages, with the first-token time of the reply that answered it."""
    events = record["events"]
    assert isinstance(events, list)
    out = []
    for i, e in enumerate(events):
        if e["kind"] != "turn" or e.get("decided_by") != "llm" or e.get("reply_out_ms") is None:
            continue
        usage = next((u for u in events[i:] if u["kind"] == "llm_usage"), None)
        row = {k: float(e[f"{k}_ms"]) for k in ("asr_final", "decision", "tts_first_audio", "reply_out")}
        if usage is not None:
            row["first_token"] = float(usage["first_token_ms"])
            row["overhead"] = row["reply_out"] - row["first_token"]
        out.append(row)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=1, help="concurrent calls per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ask-at", type=float, default=9.0, help="seconds into the call of the first question")
    ap.add_argument("--gap", type=float, default=9.0, help="seconds between the two questions")
    ap.add_argument("--llm-threads", type=int, default=1, help="llm.local_threads")
    ap.add_argument("--llm-parallel", type=int, default=4, help="llm.local_parallel")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="voicebot-llm-turn-"))
    question = work / "question.wav"
    spoken_wav(question, QUESTION)
    port = free_port()
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
        "VOICEBOT_INFERENCE__LISTEN": f"127.0.0.1:{free_port()}",
        "VOICEBOT_ASR__MODEL_DIR": str(REPO / "var" / "models"),
        "VOICEBOT_LLM__LOCAL": "true",
        "VOICEBOT_LLM__LOCAL_LISTEN": f"127.0.0.1:{free_port()}",
        "VOICEBOT_LLM__LOCAL_THREADS": str(args.llm_threads),
        "VOICEBOT_LLM__LOCAL_PARALLEL": str(args.llm_parallel),
        "VOICEBOT_LLM__MAX_TOKENS": str(args.max_tokens),
        "VOICEBOT_QUEUES": json.dumps({"support": f"sip:support@127.0.0.1:{free_port()}"}),
        "VOICEBOT_ROUTES": json.dumps(
            [{"match": "*", "dialplan": str(REPO / "dialplans" / "assistant.yaml")}]
        ),
    }
    log = (work / "voicebot.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "voicebot.cli", "run"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_sip(port, timeout=180)
        while (work / "voicebot.log").read_text(errors="replace").count("ua.ready") < k:
            time.sleep(0.2)
        time.sleep(3)
        for r in range(args.rounds):
            if r:
                time.sleep(8)  # the ended calls' workers are replaced
            callers: list[PjsuaPeer] = [
                call_bot(
                    work,
                    port,
                    "--play",
                    str(question),
                    "--play-at",
                    str(args.ask_at),
                    "--play-again-at",
                    str(args.ask_at + args.gap),
                    "--duration",
                    str(args.ask_at + 2 * args.gap + 2),
                    name=f"caller-{r}-{i}",
                )
                for i in range(args.calls)
            ]
            for peer in callers:
                peer.result(timeout=120)
        time.sleep(2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=90)
        log.close()
    rows = [t for f in sorted((work / "records").glob("*.json")) for t in turns_of(json.loads(f.read_text()))]
    summary: dict[str, object] = {
        "calls": args.calls,
        "rounds": args.rounds,
        "cores": os.cpu_count(),
        "llm_threads": args.llm_threads,
        "llm_parallel": args.llm_parallel,
        "llm_turns": len(rows),
    }
    for key in ("reply_out", "asr_final", "decision", "tts_first_audio", "first_token", "overhead"):
        vals = [row[key] for row in rows if key in row]
        summary[f"{key}_ms"] = {
            "n": len(vals),
            **{f"p{q}": round(pct(vals, q)) if vals else None for q in (50, 95)},
        }
    print(json.dumps(summary, indent=2))
    print(f"(work dir: {work})", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
