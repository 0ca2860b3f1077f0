#!/usr/bin/env python3
"""What the UA's idle audio ports cost: ports kept for reuse after their calls ended.

The UA worker never frees a call's conference-bridge port while it runs (see docs/operations.md:
freeing one races the bridge's clock thread); it keeps it idle and resets it for a later call. An
idle port is connected to nothing, yet the bridge still calls into it now and then. This counts
those Python callbacks and the process's CPU with N idle ports and no calls.

.venv/bin/python bench/idle_ports.py [N ...]     (default: 0 10 50 100)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SECONDS = 5.0


def measure(n: int) -> None:
    """One endpoint per process (pjsua2 allows one), N idle ports, SECONDS of the bridge's clock."""
    import pjsua2 as pj

    from voicebot.ua.port import CallAudioPort

    counts = {"received": 0, "audio": 0, "requested": 0}

    class Counting(CallAudioPort):
        def onFrameReceived(self, frame: pj.MediaFrame) -> None:
            counts["received"] += 1
            counts["audio"] += frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO
            super().onFrameReceived(frame)

        def onFrameRequested(self, frame: pj.MediaFrame) -> None:
            counts["requested"] += 1
            super().onFrameRequested(frame)

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.medConfig.clockRate = cfg.medConfig.sndClockRate = 16000
    cfg.medConfig.threadCnt = 1
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 1
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    ep.libStart()
    sock, _peer = socket.socketpair()
    ports = []
    for i in range(n):
        port = Counting(sock, 16000)
        port.create(f"idle-{i}")
        ports.append(port)
    ep.libHandleEvents(200)
    counts.update(received=0, audio=0, requested=0)
    cpu0, wall0 = time.process_time(), time.monotonic()
    while time.monotonic() - wall0 < SECONDS:
        ep.libHandleEvents(50)  # as the UA's main loop waits for SIP events
    cpu = (time.process_time() - cpu0) / SECONDS
    received, requested = counts["received"] / SECONDS, counts["requested"] / SECONDS
    audio = counts["audio"] / SECONDS
    print(f"{n:>5} {received:>16.0f} {audio:>12.0f} {requested:>17.0f} {100 * cpu:>8.2f}", flush=True)
    os._exit(0)  # the endpoint is not destroyed with ports alive (pjmedia asserts); the OS cleans up


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        measure(int(sys.argv[2]))
        return 0
    levels = [int(a) for a in sys.argv[1:]] or [0, 10, 50, 100]
    head = ("ports", "onFrameReceived/s", "of them audio", "onFrameRequested/s", "CPU %")
    print(f"{head[0]:>5} {head[1]:>16} {head[2]:>12} {head[3]:>17} {head[4]:>8}")
    for n in levels:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True, capture_output=True)
        print(out.stdout.decode().strip().splitlines()[-1])  # pjlib's start-up lines go first
    return 0


if __name__ == "__main__":
    sys.exit(main())
