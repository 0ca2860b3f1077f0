"""`voicebot infer`: the node's speech models behind the OpenAI-compatible audio API.

* ``POST /v1/audio/transcriptions`` (multipart: ``file`` WAV, ``model``, ``language``, ``prompt``,
  ``response_format`` json/text/verbose_json): through the decode queue (voicebot/inference/batcher.py).
* ``POST /v1/audio/speech`` (JSON: ``input``, ``model`` = a TTS backend or "default", ``voice``,
  ``response_format`` pcm/wav, ``sample_rate``, a voicebot extension; OpenAI's pcm is 24 kHz):
  s16le streamed sentence by sentence, so the first sentence plays while the next is synthesised.
* ``GET /healthz`` (the process serves), ``GET /readyz`` (models loaded), ``GET /v1/models``,
  ``GET /metrics``.

Bad requests get 400 with OpenAI's error body and a sentence saying what is wrong; overload and
expired deadlines get 503 with Retry-After; nothing a client sends takes the service down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from voicebot import logs, metrics, tracing
from voicebot.asr.base import AsrError, StreamingAsr, prompt_hints
from voicebot.inference import wire
from voicebot.inference.batcher import DecodeQueue, Expired, Overloaded
from voicebot.tts.base import TtsBackend, TtsError
from voicebot.tts.base import create as create_tts
from voicebot.tts.resample import to_call_pcm

log = logs.get_logger(__name__)
VOICE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
MAX_SPEECH_WAITING = 16  # synthesis requests waiting for a TTS thread before more are refused


class InferParams(BaseModel):
    """What `voicebot infer` loads and how it admits work (from settings: voicebot/supervisor/plan.py)."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = 9470
    asr_backend: str | None = "faster-whisper"  # None: synthesis only
    model_dir: Path = Path("var/models")
    vosk_model: str = ""
    language: str = "en"
    threads: int = Field(0, ge=0)  # decoders, one CPU thread each; 0: one per core
    batch_wait_ms: int = Field(40, ge=0, le=500)  # a free decoder waits this long for turns to batch
    whisper_window_s: float = 5.0
    batch_max: int = Field(8, ge=1, le=64)
    max_queue: int = Field(32, ge=1)
    deadline_ms: int = Field(1500, ge=50)  # a decode not started within this is refused
    tts_backend: str = "hibari"
    tts_fallback: str | None = "espeak"
    tts_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tts_threads: int = Field(2, ge=1, le=16)
    log_level: str = "info"
    log_format: str = "console"
    redact_pii: bool = False
    otlp_endpoint: str = ""  # tracing: a span per request of a traced call (voicebot/tracing.py)
    trace_service: str = "voicebot-speech"


class Service:
    """The loaded models and the queue in front of the recogniser (owned by the aiohttp app)."""

    def __init__(self, params: InferParams) -> None:
        self.p = params
        self.queue: DecodeQueue | None = None
        self.streaming: StreamingAsr | None = None  # a recogniser that decodes while the caller speaks
        self.ready = False
        self._tts: dict[tuple[str, str], TtsBackend] = {}
        self._tts_locks: dict[int, threading.Lock] = {}
        self.tts_slots = asyncio.Semaphore(params.tts_threads)  # syntheses running at once
        self.tts_admitted = 0  # running or waiting for a slot
        self._load_lock = threading.Lock()
        # tracing (voicebot/tracing.py): a span per request of a traced call, under the call's root
        self.trace_provider: Any = None
        if params.otlp_endpoint:
            self.trace_provider = tracing.provider(params.otlp_endpoint, params.trace_service)
        self.tracer: Any = self.trace_provider.get_tracer("voicebot.speech") if self.trace_provider else None

    def span(
        self, request: web.Request, name: str, **attributes: Any
    ) -> contextlib.AbstractContextManager[Any]:
        """A span for this request when tracing is on and the caller sent a traceparent."""
        if self.tracer is None or "traceparent" not in request.headers:
            return contextlib.nullcontext()
        return tracing.server_span(self.tracer, name, request.headers, **attributes)

    def load(self) -> None:
        """Blocking: load the recogniser and the default voice (readiness follows)."""
        t0 = time.monotonic()
        if self.p.asr_backend:
            recogniser = self._recogniser()
            # The first decode of a fresh model is several times slower (allocations, caches): pay
            # it now, with a batch of two, rather than on the first caller's turn.
            noise = np.random.default_rng(0).normal(0, 30, 16000).astype("<i2").tobytes()
            recogniser.transcribe_many([(noise, 16000, ""), (noise, 16000, "")])
            self.queue = DecodeQueue(
                recogniser,
                self.p.max_queue,
                self.p.batch_max,
                on_batch=metrics.infer_batch,
                decoders=self.decoders,
                gather_s=self.p.batch_wait_ms / 1000,
            )
        try:
            backend = self.tts(self.p.tts_backend, "default")
            for _ in backend.stream("Hello."):  # a voice's first synthesis is slow too
                pass
        except TtsError as exc:
            log.warning("infer.tts_unavailable", backend=self.p.tts_backend, error=str(exc)[:300])
        self.ready = True
        log.info("infer.ready", ms=round((time.monotonic() - t0) * 1000), asr=self.p.asr_backend)

    @property
    def decoders(self) -> int:
        return self.p.threads or os.cpu_count() or 1

    def _recogniser(self) -> Any:
        from voicebot.asr.base import create as create_asr

        if self.p.asr_backend == "vosk":
            vosk = create_asr("vosk", model_dir=self.p.vosk_model or None)
            if isinstance(vosk, StreamingAsr):
                self.streaming = vosk
            return _OneByOne(vosk)
        return create_asr(
            self.p.asr_backend or "faster-whisper",
            model_dir=self.p.model_dir / "whisper-base",
            threads=1,  # per decoder: on 2 cores two single-threaded decoders beat one with two
            workers=self.decoders,
            min_window_s=self.p.whisper_window_s,
            language=self.p.language,
        )

    def tts(self, model: str, voice: str) -> TtsBackend:
        """The backend for ``model`` ("default": the configured one) in ``voice`` (loaded once)."""
        if not VOICE_NAME.fullmatch(voice):
            # a backend may take a voice as a file path (piper): clients name voices, not files
            raise wire.BadAudio(f"voice {voice[:80]!r}: a voice name is letters, digits, '_', '-' and '.'")
        name = self.p.tts_backend if model in ("default", "tts-1", "tts-1-hd") else model
        if name not in {self.p.tts_backend, self.p.tts_fallback}:
            raise wire.BadAudio(
                f"model {model!r}: this server speaks with {self.p.tts_backend!r}"
                + (f" or {self.p.tts_fallback!r}" if self.p.tts_fallback else "")
            )
        key = (name, voice)
        with self._load_lock:
            if key not in self._tts:
                options = dict(self.p.tts_options.get(name, {}))
                if voice != "default":
                    options["voice"] = voice
                backend = create_tts(name, **options)
                self._tts[key] = backend
                self._tts_locks[id(backend)] = threading.Lock()
            return self._tts[key]

    def next_sentence(self, backend: TtsBackend, sentences: Iterator[Any]) -> Any:
        """One sentence, with the backend to ourselves meanwhile (other requests interleave)."""
        with self._tts_locks[id(backend)]:
            return next(sentences, None)


class _OneByOne:
    """A recogniser without batches (vosk) behind the batch interface."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def transcribe_many(self, requests: Any) -> list[Any]:
        return [self.inner.transcribe(pcm, rate, prompt_hints(prompt)) for pcm, rate, prompt in requests]


SERVICE: web.AppKey[Service] = web.AppKey("service", Service)


def _error(status: int, message: str, kind: str, retry_after: float | None = None) -> web.Response:
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    return web.json_response({"error": {"message": message, "type": kind}}, status=status, headers=headers)


async def transcriptions(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICE]
    if svc.queue is None:
        metrics.infer_request("transcriptions", "unavailable")
        reason = "still loading" if not svc.ready else "no recogniser configured"
        return _error(503, f"recognition is not available: {reason}", "unavailable", 1)
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        metrics.infer_request("transcriptions", "bad_request")
        return _error(
            413, f"the upload is larger than {wire.MAX_UPLOAD_BYTES} bytes", "invalid_request_error"
        )
    except Exception as exc:  # malformed multipart, a body cut short: the request's fault
        metrics.infer_request("transcriptions", "bad_request")
        return _error(400, f"unreadable form: {type(exc).__name__}: {exc}"[:300], "invalid_request_error")
    upload = form.get("file")
    fmt = str(form.get("response_format", "json"))
    language = str(form.get("language", svc.p.language) or svc.p.language)
    prompt = str(form.get("prompt", ""))[:1000]
    try:
        if not isinstance(upload, web.FileField):
            raise wire.BadAudio("send the audio as the multipart field 'file'")
        if fmt not in wire.RESPONSE_FORMATS:
            raise wire.BadAudio(
                f"response_format {fmt!r}: this server answers {', '.join(wire.RESPONSE_FORMATS)}"
            )
        if language != svc.p.language:
            raise wire.BadAudio(
                f"language {language!r}: this server's model is loaded for {svc.p.language!r}"
            )
        audio = wire.read_wav(upload.file.read(wire.MAX_UPLOAD_BYTES + 1))
    except wire.BadAudio as exc:
        metrics.infer_request("transcriptions", "bad_request")
        return _error(400, str(exc), "invalid_request_error")
    try:
        deadline_ms = min(float(request.headers.get("X-Deadline-Ms", svc.p.deadline_ms)), svc.p.deadline_ms)
        if not deadline_ms > 0:  # also NaN
            raise ValueError
    except ValueError:
        metrics.infer_request("transcriptions", "bad_request")
        return _error(400, "X-Deadline-Ms must be a positive number of milliseconds", "invalid_request_error")
    try:
        metrics.infer_queue(svc.queue.depth + 1)
        t0 = time.monotonic()
        with svc.span(request, "asr.transcribe", audio_s=round(audio.seconds, 3), queued=svc.queue.depth):
            result = await svc.queue.transcribe(audio.pcm, audio.rate, prompt, deadline_ms / 1000)
    except Overloaded as exc:
        metrics.infer_request("transcriptions", "overloaded")
        return _error(503, f"overloaded: {exc}", "overloaded", 1)
    except Expired as exc:
        metrics.infer_request("transcriptions", "expired")
        return _error(503, f"not decoded in time: {exc}", "overloaded", 1)
    except AsrError as exc:
        metrics.infer_request("transcriptions", "failed")
        return _error(500, str(exc)[:300], "server_error")
    finally:
        metrics.infer_queue(svc.queue.depth)
    metrics.infer_request("transcriptions", "ok")
    body = wire.transcription_body(result.text, result.confidence, audio.seconds, language, fmt)
    headers = {"X-Decode-Ms": str(round((time.monotonic() - t0) * 1000))}
    if isinstance(body, str):
        return web.Response(text=body, headers=headers)
    return web.json_response(body, headers=headers)


async def speech(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICE]
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError:
        body = None
    try:
        text, model, voice, fmt, rate = wire.speech_request(body)
        backend = await asyncio.to_thread(svc.tts, model, voice)
    except wire.BadAudio as exc:
        metrics.infer_request("speech", "bad_request")
        return _error(400, str(exc), "invalid_request_error")
    except Exception as exc:  # TtsError, a voice whose files are missing
        metrics.infer_request("speech", "failed")
        return _error(500, f"voice {voice!r} of {model!r} cannot start: {exc}"[:300], "server_error")
    if svc.tts_admitted >= MAX_SPEECH_WAITING:
        metrics.infer_request("speech", "overloaded")
        return _error(503, "overloaded: too many syntheses waiting", "overloaded", 1)
    svc.tts_admitted += 1
    try:
        async with svc.tts_slots:
            with svc.span(request, "tts.speak", chars=len(text), voice=f"{model}/{voice}"):
                return await _stream_speech(request, svc, backend, text, fmt, rate)
    finally:
        svc.tts_admitted -= 1


async def _stream_speech(
    request: web.Request, svc: Service, backend: TtsBackend, text: str, fmt: str, rate: int
) -> web.StreamResponse:
    sentences = backend.stream(text)
    try:
        first = await asyncio.to_thread(svc.next_sentence, backend, sentences)
    except Exception as exc:  # TtsError, or a model that failed on this text
        metrics.infer_request("speech", "failed")
        return _error(500, f"synthesis failed: {exc}"[:300], "server_error")
    content_type = "audio/pcm" if fmt == "pcm" else "audio/wav"
    response = web.StreamResponse(headers={"Content-Type": content_type, "X-Sample-Rate": str(rate)})
    await response.prepare(request)
    if fmt == "wav":
        await response.write(_wav_header(rate))
    audio = first
    try:
        while audio is not None:
            pcm = to_call_pcm(np.asarray(audio, np.float32), backend.sample_rate, rate)
            await response.write(pcm)
            audio = await asyncio.to_thread(svc.next_sentence, backend, sentences)
    except (ConnectionResetError, asyncio.CancelledError):
        metrics.infer_request("speech", "client_gone")  # barge-in: the caller stopped the prompt
        raise
    except Exception as exc:  # half the text was sent: the client sees a short body and says so
        metrics.infer_request("speech", "failed")
        log.error("infer.speech_failed", error=str(exc)[:300])
        return response
    metrics.infer_request("speech", "ok")
    await response.write_eof()
    return response


def _wav_header(rate: int) -> bytes:
    """A streaming WAV header (sizes unknown: the maximum, as streaming servers send)."""
    size = 0xFFFFFFFF
    return (
        b"RIFF"
        + struct.pack("<I", size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", size - 36)
    )


async def stream(request: web.Request) -> web.StreamResponse:
    """A streaming session (WebSocket ``/v1/audio/stream?sample_rate=8000&prompt=...``): binary
    messages are s16le audio, answered with ``{"type": "partial", "text"}`` whenever the words so
    far change; the text message ``{"type": "end"}`` gets ``{"type": "final", "text", "confidence",
    "audio_s"}``. For recognisers that stream (vosk); others answer one ``error`` and close."""
    svc = request.app[SERVICE]
    ws = web.WebSocketResponse(max_msg_size=1 << 20, heartbeat=30)
    await ws.prepare(request)
    try:
        rate = int(request.query.get("sample_rate", "8000"))
        if not wire.MIN_RATE <= rate <= wire.MAX_RATE:
            raise wire.BadAudio(f"sample_rate must be {wire.MIN_RATE}-{wire.MAX_RATE}")
        if svc.streaming is None:
            raise wire.BadAudio(
                f"recogniser {svc.p.asr_backend!r} does not stream: use /v1/audio/transcriptions"
            )
    except (ValueError, wire.BadAudio) as exc:
        await ws.send_json({"type": "error", "message": str(exc)})
        await ws.close()
        metrics.infer_request("stream", "bad_request")
        return ws
    session = await asyncio.to_thread(svc.streaming.open, rate, prompt_hints(request.query.get("prompt", "")))
    received = 0
    async for msg in ws:
        if msg.type == web.WSMsgType.BINARY:
            received += len(msg.data)
            if received > wire.MAX_AUDIO_S * rate * 2:
                await ws.send_json(
                    {"type": "error", "message": f"more than {wire.MAX_AUDIO_S:.0f} s of audio"}
                )
                break
            partial = await asyncio.to_thread(session.feed, msg.data)
            if partial is not None:
                await ws.send_json({"type": "partial", "text": partial})
        elif msg.type == web.WSMsgType.TEXT:
            try:
                ended = json.loads(msg.data).get("type") == "end"
            except (ValueError, AttributeError):
                ended = False
            if not ended:
                await ws.send_json({"type": "error", "message": 'send audio as binary, then {"type": "end"}'})
                continue
            result = await asyncio.to_thread(session.finish)
            await ws.send_json(
                {
                    "type": "final",
                    "text": result.text,
                    "confidence": result.confidence,
                    "audio_s": result.audio_s,
                }
            )
            metrics.infer_request("stream", "ok")
            break
    await ws.close()
    return ws


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"alive": True})


async def readyz(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    depth = svc.queue.depth if svc.queue else 0
    body = {"ready": svc.ready, "queue_depth": depth, "asr": svc.p.asr_backend, "tts": svc.p.tts_backend}
    full = svc.queue is not None and depth >= svc.p.max_queue
    return web.json_response(body, status=200 if svc.ready and not full else 503)


async def models(request: web.Request) -> web.Response:
    p = request.app[SERVICE].p
    names = [n for n in (p.asr_backend, p.tts_backend, p.tts_fallback) if n]
    return web.json_response(
        {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "voicebot"} for n in names]}
    )


async def metrics_page(_: web.Request) -> web.Response:
    body, content_type = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


def make_app(svc: Service) -> web.Application:
    app = web.Application(client_max_size=wire.MAX_UPLOAD_BYTES + 64 * 1024)
    app[SERVICE] = svc
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    app.router.add_post("/v1/audio/speech", speech)
    app.router.add_get("/v1/audio/stream", stream)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    return app


async def serve(params: InferParams, stop: asyncio.Event | None = None) -> int:
    """Listen at once (so /healthz answers while models load), load, serve until SIGTERM/SIGINT."""
    svc = Service(params)
    runner = web.AppRunner(make_app(svc), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, params.host, params.port, reuse_address=True)
    await site.start()
    log.info("infer.listening", host=params.host, port=params.port)
    if stop is None:  # the process's own service: signals stop it (tests pass their own event)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await asyncio.to_thread(svc.load)
        except Exception as exc:  # a model that is missing or broken: say which, and exit non-zero
            log.error("infer.load_failed", error=f"{type(exc).__name__}: {str(exc)[:500]}")
            return 2
        await stop.wait()
    finally:
        await runner.cleanup()
        if svc.queue is not None:
            svc.queue.close()
        if svc.trace_provider is not None:
            svc.trace_provider.shutdown()  # exports what is left
        log.info("infer.stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the supervised child: ``python -m voicebot.inference.server --params FILE``."""
    import argparse

    from voicebot.procutil import die_with_parent

    parser = argparse.ArgumentParser(prog="voicebot-infer")
    parser.add_argument("--params", type=Path, required=True)
    args = parser.parse_args(argv)
    die_with_parent(signal.SIGTERM)
    params = InferParams.model_validate_json(args.params.read_text())
    logs.configure(params.log_level, params.log_format, params.redact_pii, process="infer")
    return asyncio.run(serve(params))


if __name__ == "__main__":
    import sys

    sys.exit(main())
