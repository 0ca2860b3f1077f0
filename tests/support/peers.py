"""Real SIP peers for tests: sipp scenarios and the pjsua2 peer script."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SIPP_DIR = REPO / "tests" / "data" / "sipp"
SCENARIOS = REPO / "tests" / "integration" / "scenarios"
PEER = REPO / "tests" / "peers" / "pjsua_peer.py"


def sipp(
    scenario: str, target: str, *args: str, timeout: float = 60.0, src: str = "127.0.0.1", port: int = 0
) -> subprocess.CompletedProcess[str]:
    """Run sipp in the foreground (from tests/data/sipp so pcap paths resolve); rc 0 = all calls ok."""
    path = SCENARIOS / scenario if (SCENARIOS / scenario).exists() else SIPP_DIR / scenario
    cmd = [
        "sipp",
        "-sf",
        str(path),
        target,
        "-i",
        src,
        "-p",
        str(port),
        "-nostdin",
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        *args,
    ]
    return subprocess.run(cmd, cwd=SIPP_DIR, capture_output=True, text=True, timeout=timeout + 15)


class PjsuaPeer:
    """A pjsua2 peer process (caller or queue); result() waits for its JSON report."""

    def __init__(self, workdir: Path, name: str, mode: str, *args: str) -> None:
        self.out = workdir / f"{name}.json"
        self.log = (workdir / f"{name}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), mode, "--out", str(self.out), *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if mode == "queue":
            ready = self.out.with_suffix(".ready")
            deadline = time.monotonic() + 15
            while not ready.exists():
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"queue peer did not start: {self.out.with_suffix('.log')}")
                time.sleep(0.05)

    def result(self, timeout: float = 60.0) -> dict[str, Any]:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()
        if not self.out.exists():
            raise AssertionError(f"peer wrote no result; log:\n{Path(self.log.name).read_text()[-3000:]}")
        data: dict[str, Any] = json.loads(self.out.read_text())
        return data

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def call_bot(workdir: Path, port: int, *args: str, name: str = "caller") -> PjsuaPeer:
    """A pjsua2 caller dialling the bot on 127.0.0.1:port from its own free RTP port."""
    from support.net import free_port

    target = f"sip:100@127.0.0.1:{port}"
    return PjsuaPeer(workdir, name, "caller", "--target", target, "--rtp-port", str(free_port()), *args)


def queue_peer(workdir: Path, port: int, *args: str, name: str = "queue") -> PjsuaPeer:
    """A pjsua2 peer acting as a human queue on 127.0.0.1:port."""
    from support.net import free_port

    return PjsuaPeer(workdir, name, "queue", "--port", str(port), "--rtp-port", str(free_port()), *args)
