"""Run a real ``voicebot run`` for integration tests, configured by environment variables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.net import free_port, wait_sip
from support.procs import stop

REPO = Path(__file__).resolve().parents[2]


@dataclass
class VoicebotServer:
    """A supervisor process and everything it started; stop() drains it with SIGTERM.
    ``command`` "edge" runs `voicebot edge` instead of `voicebot run`."""

    workdir: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    command: str = "run"
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "voicebot.log"

    @property
    def record_dir(self) -> Path:
        return self.workdir / "records"

    def start(self, wait: bool = True) -> VoicebotServer:
        env = {**os.environ, **self.env}
        self.log_fh = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voicebot.cli", self.command],
            cwd=REPO,
            env=env,
            stdout=self.log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if wait:
            # A UA worker listens once its call-worker pool is ready (it waits up to 60 s for it):
            # with litellm and a warm TTS to load on two busy cores that can take tens of seconds.
            wait_sip(self.port, timeout=75)
            if self.command == "run":
                self.wait_log(r"ua\.ready", count=int(self.env.get("VOICEBOT_WORKERS__UA_WORKERS", "1")))
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> str:
        """The Prometheus text the supervisor serves on /metrics."""
        import urllib.request

        url = f"http://{self.env['VOICEBOT_METRICS__LISTEN']}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return str(reply.read().decode())

    def probe(self, name: str) -> tuple[int, dict[str, Any]]:
        """GET /healthz or /readyz: (HTTP status, JSON body); (0, {}) while nothing listens."""
        import urllib.error
        import urllib.request

        url = f"http://{self.env['VOICEBOT_METRICS__LISTEN']}/{name}"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return int(reply.status), json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read())
        except (ConnectionError, urllib.error.URLError):
            return 0, {}

    def wait_log(self, pattern: str, count: int = 1, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [line for line in self.log().splitlines() if re.search(pattern, line)]
            if len(hits) >= count:
                return hits
            time.sleep(0.1)
        raise TimeoutError(f"log never showed {count}x {pattern!r}:\n{self.log()[-3000:]}")

    def records(self, expect: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The per-call JSON summaries the call workers wrote."""
        deadline = time.monotonic() + timeout
        while True:
            files = sorted(self.record_dir.glob("*.json")) if self.record_dir.is_dir() else []
            if len(files) >= expect or time.monotonic() > deadline:
                return [json.loads(f.read_text()) for f in files]
            time.sleep(0.1)

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc is None:
            return 0
        rc = stop(self.proc, timeout)
        self.log_fh.close()
        return rc

    def pids(self, pattern: str = r"ua\.started.*pid=(\d+)") -> list[int]:
        return [int(m.group(1)) for m in re.finditer(pattern, self.log())]


def server_env(workdir: Path, port: int, rtp_start: int, **extra: str) -> dict[str, str]:
    env = {
        "VOICEBOT_SIP__PORT": str(port),
        "VOICEBOT_SIP__LISTEN": "127.0.0.1",
        "VOICEBOT_SIP__RTP_PORT_START": str(rtp_start),
        "VOICEBOT_SIP__RTP_PORTS_PER_WORKER": "40",
        "VOICEBOT_RUN_DIR": str(workdir / "run"),
        "VOICEBOT_CALL__RECORD_DIR": str(workdir / "records"),
        "VOICEBOT_WORKERS__DRAIN_TIMEOUT_S": "5",
        "VOICEBOT_LOG__LEVEL": "info",
        # one UA worker listening directly unless a test asks for the edge
        "VOICEBOT_WORKERS__UA_WORKERS": "1",
        # keys only unless a test is about speech: loading Whisper in every call worker costs seconds
        "VOICEBOT_ASR__BACKEND": "none",
        # the telephony tests drive the built-in key handler; dialplan calls are tested on their own
        "VOICEBOT_CALL__LOGIC": "builtin",
        "VOICEBOT_ASR__MODEL_DIR": str(REPO / "var" / "models"),
        # each server its own database (calls are kept there when they end)
        "VOICEBOT_DATABASE__URL": f"sqlite+aiosqlite:///{workdir / 'voicebot.db'}",
        # and its own copy of the published dialplan versions
        "VOICEBOT_DIALPLAN_STORE": str(workdir / "dialplans"),
        # each server its own /metrics port (a fixed one would collide between tests)
        "VOICEBOT_METRICS__LISTEN": f"127.0.0.1:{free_port()}",
        # and its own admin console port
        "VOICEBOT_CONSOLE__LISTEN": f"127.0.0.1:{free_port()}",
        # and its own speech service port
        "VOICEBOT_INFERENCE__LISTEN": f"127.0.0.1:{free_port()}",
    }
    env.update(extra)
    return env
