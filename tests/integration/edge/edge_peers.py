"""Real peers for the edge tests: sipp UAS backends, sipp UAC callers, free ports, edge params.

Every process started here can be stopped with a bounded wait (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from support.net import free_port

from voicebot.edge import sip_probe
from voicebot.edge.params import DEFAULT_SCANNER_USER_AGENTS, Backend, EdgeParams
from voicebot.edge.runner import KamailioEdge

SCENARIOS = Path(__file__).parent / "scenarios"
KAMAILIO = "/usr/sbin/kamailio"
SIPP = shutil.which("sipp") or "/usr/bin/sipp"

# ``await start_edge(**overrides)``: the fixture that starts a KamailioEdge with EdgeParams overrides.
EdgeFactory = Callable[..., Awaitable[KamailioEdge]]


def require_tools() -> None:
    """Fail loudly when the real peers are missing: `make test` installs them, CI must never skip."""
    if not Path(KAMAILIO).exists():
        pytest.fail("kamailio not installed: run `make install`")
    if not Path(SIPP).exists():
        pytest.fail("sipp (sip-tester) not installed: run `make install`")


async def _terminate(proc: asyncio.subprocess.Process, timeout: float = 3.0) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


class SippUas:
    """A sipp UAS standing in for a UA worker: answers calls (uas_rr.xml) and OPTIONS (-aa)."""

    def __init__(self, workdir: Path, port: int, scenario: str = "uas_rr.xml") -> None:
        self.port = port
        self.scenario = scenario
        self.message_file = workdir / f"uas_{port}.msg"
        self.log = workdir / f"uas_{port}.out"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> SippUas:
        with self.log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                SIPP, "-sf", str(SCENARIOS / self.scenario), "-i", "127.0.0.1", "-p", str(self.port),
                "-nostdin", "-aa", "-trace_msg", "-message_file", str(self.message_file),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while await sip_probe.options_ping("127.0.0.1", self.port, timeout=0.2) != 200:
            if time.monotonic() > deadline or self.proc.returncode is not None:
                raise RuntimeError(f"sipp uas on {self.port} did not start: {self.log.read_text()[-2000:]}")
            await asyncio.sleep(0.1)
        return self

    def invites(self) -> set[str]:
        """Call-IDs of the INVITEs this UAS received (retransmissions counted once)."""
        if not self.message_file.exists():
            return set()
        text = self.message_file.read_text(errors="replace")
        calls = set()
        for block in text.split("-----------------------------------------------"):
            if "message received" in block and re.search(r"^INVITE ", block, re.MULTILINE):
                match = re.search(r"^Call-ID:\s*(\S+)", block, re.MULTILINE | re.IGNORECASE)
                if match:
                    calls.add(match.group(1))
        return calls

    def received(self, method: str) -> int:
        """How many requests of ``method`` arrived (retransmissions included)."""
        if not self.message_file.exists():
            return 0
        return len(
            re.findall(rf"^{method} sip:", self.message_file.read_text(errors="replace"), re.MULTILINE)
        )

    async def kill(self) -> None:
        """SIGKILL: the worker dies without a word, like a crashed UA process."""
        if self.proc and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def stop(self) -> None:
        if self.proc:
            await _terminate(self.proc)


@dataclass
class UacResult:
    """Outcome of one sipp UAC run."""

    returncode: int
    successful: int
    failed: int
    elapsed_s: float
    output: str


class Uac:
    """Runs sipp as a caller against the edge; every run is bounded by a timeout and reaped."""

    def __init__(self, workdir: Path, edge_port: int) -> None:
        self.workdir = workdir
        self.edge_port = edge_port
        self.running: list[asyncio.subprocess.Process] = []

    async def run(
        self,
        scenario: str = "uac_rr.xml",
        calls: int = 1,
        concurrent: int = 1,
        duration_ms: int = 0,
        src: str = "127.0.0.1",
        timeout: float = 20.0,
        extra: tuple[str, ...] = (),
        scenario_path: Path | None = None,
    ) -> UacResult:
        """Place ``calls`` calls (``concurrent`` at a time) and wait for sipp to finish.

        uac_rr.xml runs with sipp's abort-on-unexpected-message off, because a late 180 (reordered
        behind the 200 by Kamailio's worker processes) is legal; any real failure still ends as a
        timeout of the call. The other scenarios keep it: they detect answers that must not come.
        """
        path = scenario_path or SCENARIOS / scenario
        if path.name == "uac_rr.xml":
            extra = ("-default_behaviors", "all,-abortunexp", *extra)
        port = free_port(src)
        stats = self.workdir / f"uac_{port}.out"
        started = time.monotonic()
        with stats.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                SIPP, "-sf", str(path), f"127.0.0.1:{self.edge_port}", "-i", src, "-p", str(port),
                "-m", str(calls), "-l", str(concurrent), "-r", "100", "-d", str(duration_ms),
                "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error",
                "-trace_err", "-error_file", str(self.workdir / f"uac_{port}.err"), *extra,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, cwd=self.workdir,
            )  # fmt: skip
        self.running.append(proc)
        try:
            await asyncio.wait_for(proc.wait(), timeout + 10)
        finally:
            await _terminate(proc)
        text = stats.read_text(errors="replace")
        return UacResult(
            returncode=proc.returncode if proc.returncode is not None else -1,
            successful=_last_count(text, "Successful call"),
            failed=_last_count(text, "Failed call"),
            elapsed_s=time.monotonic() - started,
            output=text[-3000:],
        )

    async def close(self) -> None:
        for proc in self.running:
            await _terminate(proc)


def _last_count(screen: str, label: str) -> int:
    """The cumulative column of a sipp statistics line (its last number)."""
    lines = [line for line in screen.splitlines() if line.strip().startswith(label)]
    if not lines:
        return 0
    numbers = re.findall(r"\d+", lines[-1])
    return int(numbers[-1]) if numbers else 0


def edge_params(run_dir: Path, port: int, uas: list[SippUas], **overrides: Any) -> EdgeParams:
    """Params of an edge on 127.0.0.1 in front of the ``uas``; tests override single fields."""
    params = EdgeParams(
        listen="127.0.0.1",
        advertise="",
        port=port,
        transports=("udp", "tcp"),
        tls_port=free_port(),
        tls_cert=None,
        tls_key=None,
        backends=tuple(Backend("127.0.0.1", u.port) for u in uas),
        trunk_allow=("127.0.0.1/32",),
        # Above a 12-call burst (3 requests a call) but far below the flood test's 400 datagrams.
        pike_reqs_per_interval=100,
        pike_interval_s=2,
        scanner_user_agents=DEFAULT_SCANNER_USER_AGENTS,
        probe_interval_s=1,
        run_dir=run_dir,
    )
    return replace(params, **overrides)


class SipStream:
    """A SIP client over TCP or TLS: writes requests, reads responses framed by Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, tls: bool) -> SipStream:
        ctx = None
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the edge's test certificate is self-signed
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        return cls(reader, writer)

    @property
    def local_port(self) -> int:
        port: int = self.writer.get_extra_info("sockname")[1]
        return port

    async def send(self, message: str) -> None:
        self.writer.write(message.encode())
        await self.writer.drain()

    async def response(self, timeout: float = 3.0) -> str:
        """The next message (headers and body) from the stream."""
        head = (await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)).decode()
        match = re.search(r"^Content-Length:\s*(\d+)", head, re.MULTILINE | re.IGNORECASE)
        length = int(match.group(1)) if match else 0
        body = await asyncio.wait_for(self.reader.readexactly(length), timeout) if length else b""
        return head + body.decode()

    async def final_response(self, timeout: float = 3.0) -> str:
        """Skip provisional responses; the first final one."""
        while True:
            message = await self.response(timeout)
            if not message.startswith("SIP/2.0 1"):
                return message

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self.writer.wait_closed()


def self_signed_cert(workdir: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for CN=127.0.0.1, made with the openssl CLI."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key
