"""Per-call worker process: one answered call, driven over the IPC socket by its UA worker.

Started by :class:`voicebot.ua.pool.CallWorkerPool` with the socket as an inherited fd, as a program
or forked from the fork server (voicebot/callworker/forkserver.py). It gets ready what it needs (the
speech service's client, or with ``inference.mode: off`` its own recogniser and a warm TTS; litellm
when an LLM is configured), says
``WorkerReady``, waits for ``CallStart``, runs the call's engine (voicebot/engine) through the effects
runner, and exits when the call ends or the socket closes. A ``CallStart`` with ``resume`` goes on
with a call whose previous worker died, from its last checkpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import structlog

from voicebot import logs, tracing
from voicebot.asr.base import AsrBackend, FailingAsr
from voicebot.asr.base import create as create_asr
from voicebot.callworker.params import CallWorkerParams
from voicebot.callworker.persist import save_call
from voicebot.callworker.plans import plan_for_call
from voicebot.callworker.runner import CallRunner
from voicebot.engine.engine import CallEngine, CallInfo, EngineConfig, Resume
from voicebot.ipc import proto
from voicebot.llm.client import load_litellm
from voicebot.media.prompts import Prompts
from voicebot.procutil import die_with_parent
from voicebot.records import record as records
from voicebot.tts.base import TtsError

log = logs.get_logger(__name__)


def voices(params: CallWorkerParams, voice: str | None, rate: int) -> list[Prompts]:
    """The chain a prompt is tried in: the plan's voice, the backend's default voice, the fallback."""
    chain = [params.prompts(voice, rate)]
    if voice:
        chain.append(params.prompts(None, rate))
    if params.tts_fallback and params.tts_fallback != params.tts_backend:
        fallback = params.model_copy(update={"tts_backend": params.tts_fallback, "tts_fallback": None})
        chain.append(fallback.prompts(None, rate))
        if params.tts_providers and params.tts_fallback == "espeak":
            # espeak-ng is a small program, not a model: when every speech service is down, the
            # caller still hears words instead of silence
            chain.append(fallback.prompts(None, rate, local=True))
    return chain


async def recv(sock: socket.socket) -> proto.Control | bytes | None:
    try:
        data = await asyncio.get_running_loop().sock_recv(sock, proto.MAX_MESSAGE + 1)
    except (ConnectionResetError, BrokenPipeError):
        return None  # the UA worker closed the pool (it stops) before a call came
    return proto.decode(data) if data else None


async def serve(sock: socket.socket, params: CallWorkerParams, asr: AsrBackend | None = None) -> int:
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_sendall(sock, proto.encode_control(proto.WorkerReady(pid=os.getpid())))
    except (BrokenPipeError, ConnectionResetError):
        return 0  # the UA worker went away (it stops, or died) while we were loading: nobody to serve
    first = await recv(sock)
    if first is None:
        return 0  # pool closed before we got a call: normal at shutdown
    if not isinstance(first, proto.CallStart):
        log.error("ipc.protocol", why="first message was not call_start")
        return 1
    structlog.contextvars.bind_contextvars(call_id=first.call_id, sip_call_id=first.sip_call_id)
    if params.otlp_endpoint:  # the speech service's spans go under the call's root span
        tracing.TRACEPARENT.set(tracing.traceparent(first.call_id))
    log.info(
        "call.started",
        trunk=first.trunk,
        caller=first.caller,
        callee=first.callee,
        resumed=first.deaths,
        direction=first.direction,
    )
    worker_started = datetime.datetime.now(datetime.UTC)
    started_at = (
        datetime.datetime.fromtimestamp(first.answered_at, datetime.UTC)
        if first.answered_at
        else datetime.datetime.now(datetime.UTC)
    )
    plan = plan_for_call(params, first.dialplan, first.call_id)
    resume = Resume(json.loads(first.resume), first.deaths) if first.resume else None
    cfg = EngineConfig(sample_rate=first.sample_rate, recognise=asr is not None, max_call_s=params.max_call_s)
    info = CallInfo(
        call_id=first.call_id,
        caller=first.caller,
        called=first.callee,
        direction=first.direction,
        entry=first.entry,
        variables=dict(first.variables),
    )
    engine = CallEngine(plan, info, cfg, resume)
    runner = CallRunner(
        sock, params, first, engine, asr, voices(params, plan.settings.voice, first.sample_rate)
    )
    try:
        await runner.run()
    finally:
        runner.save({"worker_pid": os.getpid(), "plan": plan.id})
        if params.database_url:
            await save_call(
                params.database_url,
                first,
                started_at,
                runner.events,
                params.redact_pii,
                worker_started,
                params.jobs,
                params.spool_dir,
            )
        if params.otlp_endpoint:
            await export_trace(params, first, started_at, worker_started, runner.events)
        log.info("call.worker_done", digits=len(engine.digits))
    return 0


async def export_trace(
    params: CallWorkerParams,
    start: proto.CallStart,
    started_at: datetime.datetime,
    events_at: datetime.datetime,
    events: list[dict[str, Any]],
) -> None:
    """The call's spans to the collector, after the call (bounded; a failure costs a warning)."""
    try:
        rec = records.build(start, started_at, events, params.redact_pii, events_at)
        invite = start.invite_ms if start.worker_no == 1 else 0.0  # a resumed part has no INVITE
        n = await asyncio.to_thread(
            tracing.export_call, params.otlp_endpoint, params.trace_service, rec, events, events_at, invite
        )
        log.info("tracing.exported", spans=n)
    except Exception as exc:  # tracing must never cost a call anything
        log.warning("tracing.export_failed", error=f"{type(exc).__name__}: {str(exc)[:200]}")


def load_asr(params: CallWorkerParams) -> AsrBackend | None:
    """The configured recogniser, loaded once per worker process (None: keys only)."""
    backend: AsrBackend | None = None
    if params.asr_backend and params.asr_providers:  # a speech service has the model
        backend = create_asr("service", providers=params.asr_providers, breaker_dir=params.breaker_dir)
    elif params.asr_backend == "vosk":
        backend = create_asr("vosk", model_dir=params.vosk_model or None)
    elif params.asr_backend:
        backend = create_asr(
            params.asr_backend,
            model_dir=params.model_dir / "whisper-base",
            threads=params.asr_threads,
            min_window_s=params.whisper_window_s,
        )
    if backend is not None and params.asr_inject_failures > 0:
        log.warning("asr.fault_drill", failure_rate=params.asr_inject_failures)
        backend = FailingAsr(backend, params.asr_inject_failures)
    return backend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicebot-call-worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--params", type=Path, required=True)
    args = parser.parse_args(argv)
    die_with_parent(signal.SIGKILL)  # our UA worker is gone, and with it the call
    params = CallWorkerParams.model_validate_json(args.params.read_text())
    logs.configure(params.log_level, params.log_format, params.redact_pii, process="call")
    return run(args.fd, params)


def run(fd: int, params: CallWorkerParams) -> int:
    """One call worker's life on socket ``fd``: started as a program (main) or forked from the
    fork server (voicebot/callworker/forkserver.py), which has already imported everything."""
    # Ctrl-C in a terminal hits the whole process group; the UA worker decides when a call ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    t0 = time.monotonic()
    # Load the recogniser before saying ready: the pool hides the load time from callers.
    asr = load_asr(params)
    if params.llm.configured:
        load_litellm()  # seconds of import: paid here, not by the caller's first agent turn
    if (params.llm.configured or params.warm_tts) and not params.tts_providers:
        # (A speech service keeps its voices warm itself.)
        # LLM sentences and rendered prompts ("Hello {caller}") are never cached: load and warm the
        # TTS now, not while a caller waits (hibari's first load took 5.5 s with four workers at once).
        try:
            params.prompts().warm()
        except TtsError as exc:
            log.warning("tts.warm_failed", error=str(exc))
    log.debug("call_worker.loaded", ms=round((time.monotonic() - t0) * 1000))
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    profile_dir = os.environ.get("VOICEBOT_PROFILE_DIR")  # developers: where the CPU goes in a call
    if profile_dir:
        import cProfile

        profiler = cProfile.Profile()
        try:
            return profiler.runcall(asyncio.run, serve(sock, params, asr))
        finally:
            profiler.dump_stats(Path(profile_dir) / f"call-worker-{os.getpid()}.prof")
            sock.close()
    try:
        return asyncio.run(serve(sock, params, asr))
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
