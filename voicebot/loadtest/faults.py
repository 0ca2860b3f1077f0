"""Faults a load test injects on request.

* **HTTP dependencies** (a tool backend, an LLM endpoint, a speech provider): a fault proxy listens
  where the bot is told its dependency is and forwards to the real one, answering a share of the
  requests with an error status (429, 503...) instead, or holding them back first (a slow backend;
  for a streamed LLM reply, a slow first token). ``LISTEN=UPSTREAM[,status=429][,rate=0.3]
  [,delay_s=2][,seed=1]``. Point the bot at LISTEN (its integration's ``base_url``, ``llm.api_base``).
* **Timed commands** (``--at 10:COMMAND``): e.g. stop the database ten seconds into the run and start
  it again later; each command's exit code is kept with the results.
* **RTP loss** is the callers' own: pjmedia drops a share of the RTP they send and receive
  (run.py, ``--rtp-loss``).
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from voicebot.config import host_port
from voicebot.errors import ConfigError

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "upgrade",
    "te",
    "trailer",
}


@dataclass(frozen=True)
class ProxyFault:
    listen: str
    upstream: str
    status: int = 0  # answer this instead of forwarding (0: forward)
    rate: float = 1.0  # share of requests the fault hits
    delay_s: float = 0.0  # hold a hit request this long first
    seed: int = 1  # which requests are hit: the same run hits the same ones

    @classmethod
    def parse(cls, text: str) -> ProxyFault:
        head, *opts = [p.strip() for p in text.split(",")]
        listen, sep, upstream = head.partition("=")
        if not sep or not upstream.startswith(("http://", "https://")):
            raise ConfigError(
                f"fault proxy {text!r}: LISTEN=http://UPSTREAM[,status=429][,rate=0.3][,delay_s=2]"
            )
        try:
            host_port(listen)
            values: dict[str, Any] = {}
            for opt in opts:
                key, _, value = opt.partition("=")
                if key == "status":
                    values[key] = int(value)
                elif key in ("rate", "delay_s"):
                    values[key] = float(value)
                elif key == "seed":
                    values[key] = int(value)
                else:
                    raise ValueError(f"unknown option {key!r}")
        except ValueError as exc:
            raise ConfigError(f"fault proxy {text!r}: {exc}") from None
        fault = cls(listen, upstream.rstrip("/"), **values)
        if fault.status and not 400 <= fault.status <= 599:
            raise ConfigError(f"fault proxy {text!r}: status must be an HTTP error (400-599)")
        if not 0 <= fault.rate <= 1 or fault.delay_s < 0:
            raise ConfigError(f"fault proxy {text!r}: rate is 0..1 and delay_s is not negative")
        if not fault.status and not fault.delay_s:
            raise ConfigError(f"fault proxy {text!r}: say which fault: status=..., delay_s=... or both")
        return fault


@dataclass
class ProxyCounts:
    requests: int = 0
    failed: int = 0  # answered with the fault's status
    delayed: int = 0
    forwarded: int = 0
    upstream_errors: int = 0  # the real dependency could not be reached (502 sent)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class FaultProxy:
    """One proxy on its own thread and event loop (the load test's main thread runs pjsua2)."""

    def __init__(self, fault: ProxyFault) -> None:
        self.fault = fault
        self.counts = ProxyCounts()
        self._random = random.Random(fault.seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"fault-proxy-{fault.listen}", daemon=True
        )
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        except OSError as exc:
            self.stop()
            raise ConfigError(f"fault proxy cannot listen on {self.fault.listen}: {exc.strerror}") from None

    async def _start(self) -> None:
        self._client = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=120))
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        host, port = host_port(self.fault.listen)
        await web.TCPSite(self._runner, host, port).start()

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        f, n = self.fault, self.counts
        n.requests += 1
        hit = self._random.random() < f.rate
        if hit and f.delay_s:
            n.delayed += 1
            await asyncio.sleep(f.delay_s)
        if hit and f.status:
            n.failed += 1
            headers = {"Retry-After": "1"} if f.status in (429, 503) else {}
            body = {"error": {"message": f"injected by voicebot loadtest: {f.status}", "type": "injected"}}
            return web.json_response(body, status=f.status, headers=headers)
        assert self._client is not None
        payload = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            async with self._client.request(
                request.method,
                f.upstream + request.path_qs,
                headers=headers,
                data=payload,
                allow_redirects=False,
            ) as up:
                n.forwarded += 1  # the real dependency answered: its reply is passed on
                reply = web.StreamResponse(
                    status=up.status,
                    headers={k: v for k, v in up.headers.items() if k.lower() not in HOP_BY_HOP},
                )
                await reply.prepare(request)
                async for chunk in up.content.iter_any():  # streamed as it comes (an LLM's tokens)
                    await reply.write(chunk)
                await reply.write_eof()
                return reply
        except (aiohttp.ClientError, TimeoutError) as exc:
            n.upstream_errors += 1
            return web.json_response({"error": {"message": f"upstream unreachable: {exc}"}}, status=502)


@dataclass(frozen=True)
class TimedCommand:
    at_s: float
    command: str

    @classmethod
    def parse(cls, text: str) -> TimedCommand:
        at, sep, command = text.partition(":")
        try:
            at_s = float(at)
        except ValueError:
            at_s = -1.0
        if not sep or at_s < 0 or not command.strip():
            raise ConfigError(f"--at {text!r}: SECONDS:COMMAND, e.g. 10:'pg_ctlcluster 15 main stop'")
        return cls(at_s, command.strip())


@dataclass
class CommandRunner:
    """Runs each command at its time from start() (a thread), keeping what each returned."""

    commands: list[TimedCommand]
    done: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        if self.commands:
            self._thread = threading.Thread(target=self._run, name="loadtest-commands", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        for cmd in sorted(self.commands, key=lambda c: c.at_s):
            # when the run ends first, the rest run at once: a restore must never be skipped
            self._stop.wait(max(0.0, started + cmd.at_s - time.monotonic()))
            try:
                proc = subprocess.run(cmd.command, shell=True, capture_output=True, text=True, timeout=120)
                code, tail = proc.returncode, (proc.stdout + proc.stderr).strip()[-300:]
            except subprocess.TimeoutExpired:
                code, tail = -1, "timed out after 120 s"
            self.done.append(
                {
                    "at_s": cmd.at_s,
                    "ran_at_s": round(time.monotonic() - started, 2),
                    "command": cmd.command,
                    "exit": code,
                    "output": tail,
                }
            )

    def stop(self) -> None:
        """End of the run: the commands not yet due run now (in order), then this returns."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
