"""Recognition and synthesis through speech services: an ordered chain of providers per stage.

A provider is any OpenAI-compatible audio API: voicebot's own service (`voicebot infer`, started per
node by `voicebot run`), vLLM's or speaches' Whisper serving, OpenAI, Groq, Azure. Requests go
through httpx (already in every call worker for dialplan tools): the official ``openai`` client was
tried first and costs 36 MB more per call worker (its types and resources; 116 MB instead of 80), a
third of the worker's budget, for two endpoints whose shape is simple and stable (multipart
``/audio/transcriptions``, streamed ``/audio/speech``). No retries below this module: one policy,
here. For each request
the chain is walked in order: a provider whose circuit is open (voicebot/inference/breaker.py, shared
by the node's call workers) is skipped, a provider with several replicas sends it to the one with
the fewest requests outstanding, and a failure (connection, timeout, 429, 5xx) moves on to the next
replica and provider within the same turn. A 400 is the request's fault: no fallback, AsrError.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from voicebot.asr.base import AsrError, Transcript, hints_prompt
from voicebot.asr.base import register as register_asr
from voicebot.inference import wire
from voicebot.inference.breaker import SharedBreaker
from voicebot.inference.providers import ProviderConfig
from voicebot.logs import get_logger
from voicebot.media.audiofile import wav_bytes
from voicebot.tracing import TRACEPARENT
from voicebot.tts.base import Audio, TtsError
from voicebot.tts.base import register as register_tts

log = get_logger(__name__)


_CLIENTS: dict[tuple[str, str, float], httpx.Client] = {}
_OUTSTANDING: dict[str, int] = {}
_LOCK = threading.Lock()


class ProviderError(Exception):
    """A provider answered with an error status."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


def _client(url: str, provider: ProviderConfig) -> httpx.Client:
    key = os.environ.get(provider.api_key_env, "") if provider.api_key_env else ""
    cache_key = (url, provider.api_key_env or "", provider.timeout_s)
    with _LOCK:
        if cache_key not in _CLIENTS:
            _CLIENTS[cache_key] = httpx.Client(
                base_url=url.rstrip("/") + "/",
                timeout=httpx.Timeout(provider.timeout_s),  # each connect/read/write; no redirects
                headers={"Authorization": f"Bearer {key}"} if key else {},
                follow_redirects=False,
                # HTTP(S)_PROXY from the environment for providers out there, never for this host's
                # own service (a proxy setting without NO_PROXY would send it to the proxy)
                trust_env=httpx.URL(url).host not in ("127.0.0.1", "localhost", "::1"),
            )
        return _CLIENTS[cache_key]


def _check(response: httpx.Response) -> None:
    """ProviderError with the provider's own message (OpenAI's error body) for a non-2xx answer."""
    if response.is_success:
        return
    try:
        body = response.json()
        message = str(body.get("error", {}).get("message") or body)
    except ValueError:
        message = response.text
    raise ProviderError(response.status_code, f"HTTP {response.status_code}: {message[:200]}")


def _replicas(provider: ProviderConfig) -> list[str]:
    """Fewest outstanding first (ties in random order, so the node's workers spread their requests)."""
    urls = list(provider.urls)
    random.shuffle(urls)
    with _LOCK:
        return sorted(urls, key=lambda u: _OUTSTANDING.get(u, 0))


class _Outstanding:
    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> None:
        with _LOCK:
            _OUTSTANDING[self.url] = _OUTSTANDING.get(self.url, 0) + 1

    def __exit__(self, *_: object) -> None:
        with _LOCK:
            _OUTSTANDING[self.url] -= 1


def _is_request_fault(exc: Exception) -> bool:
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429)


def _why(exc: Exception) -> str:
    if isinstance(exc, ProviderError):
        return str(exc)[:200]
    return f"{type(exc).__name__}: {exc}"[:200]


class _Chain:
    def __init__(
        self, providers: Sequence[ProviderConfig | dict[str, Any]], breaker_dir: Path | str | None
    ) -> None:
        self.providers = [p if isinstance(p, ProviderConfig) else ProviderConfig(**p) for p in providers]
        if not self.providers:
            raise ValueError("no speech provider configured")
        directory = Path(breaker_dir) if breaker_dir else None
        self.breakers = {
            (p.name, url): SharedBreaker(directory, f"{p.name}-{url}")
            for p in self.providers
            for url in p.urls
        }
        for p in self.providers:  # connection pools ready before the first turn
            for url in p.urls:
                _client(url, p)

    def targets(self) -> Iterator[tuple[ProviderConfig, str, SharedBreaker]]:
        """Every replica of every provider, in order, open circuits skipped; if every one was tried
        or skipped and the request still failed, the skipped ones get a last try (a node's only
        service that was restarted a moment ago is better asked than given up on)."""
        skipped = []
        for provider in self.providers:
            for url in _replicas(provider):
                breaker = self.breakers[(provider.name, url)]
                if breaker.allow():
                    yield provider, url, breaker
                else:
                    skipped.append((provider, url, breaker))
        yield from skipped


@register_asr("service")
class ServiceAsr:
    """Recognition through the provider chain (a call worker loads no model)."""

    name = "service"

    def __init__(
        self,
        providers: Sequence[ProviderConfig | dict[str, Any]],
        breaker_dir: Path | str | None = None,
    ) -> None:
        self.chain = _Chain(providers, breaker_dir)

    def transcribe(self, pcm: bytes, sample_rate: int, hints: Sequence[str] = ()) -> Transcript:
        t0 = time.perf_counter()
        audio_s = len(pcm) / 2 / sample_rate
        upload = ("turn.wav", wav_bytes(pcm[: len(pcm) // 2 * 2], sample_rate), "audio/wav")
        errors: list[str] = []
        for provider, url, breaker in self.chain.targets():
            form = {
                "model": provider.model if provider.model != "default" else "whisper-1",
                "prompt": hints_prompt(hints),
                "response_format": "verbose_json",
            }
            headers = _trace_headers()
            if provider.voicebot:  # the server drops it unstarted rather than answer too late
                headers["X-Deadline-Ms"] = str(round(provider.timeout_s * 1000 * 0.8))
            try:
                with _Outstanding(url):
                    response = _client(url, provider).post(
                        "audio/transcriptions", files={"file": upload}, data=form, headers=headers
                    )
                    _check(response)
                    answer = response.json()
                if not isinstance(answer, dict):
                    raise ProviderError(502, "the answer is not a JSON object")
            except Exception as exc:  # httpx.TransportError (refused, timed out), ProviderError
                if _is_request_fault(exc):
                    raise AsrError(f"{provider.name} refused the audio: {_why(exc)}") from exc
                overloaded = getattr(exc, "status_code", None) == 503 and provider.voicebot
                if not overloaded:  # a full queue is not a broken service: try the next, keep it in
                    breaker.failure()
                errors.append(f"{provider.name} ({url}): {_why(exc)}")
                log.warning("asr.provider_failed", provider=provider.name, url=url, error=_why(exc))
                continue
            breaker.success()
            text = str(answer.get("text") or "").strip()
            confidence = wire.confidence_of(answer.get("segments"))
            if confidence is None:
                confidence = 0.9 if text else 0.0  # providers that give no scores: trust the text
            took = round(time.perf_counter() - t0, 3)
            return Transcript(text, confidence, round(audio_s, 3), took, provider.name)
        raise AsrError("every recogniser failed: " + "; ".join(errors))


def _trace_headers() -> dict[str, str]:
    """The call's W3C traceparent, when the call is traced (voicebot/tracing.py)."""
    parent = TRACEPARENT.get()
    return {"traceparent": parent} if parent else {}


@register_tts("service")
class ServiceTts:
    """Synthesis through the provider chain, streamed: audio comes as the provider sends it.

    ``sample_rate`` is what the chain delivers: voicebot's service sends the call's rate; other
    providers send OpenAI's 24 kHz pcm, resampled by voicebot/media/prompts.py like any backend."""

    name = "service"

    def __init__(
        self,
        providers: Sequence[ProviderConfig | dict[str, Any]],
        model: str = "default",
        voice: str | None = None,
        sample_rate: int = 8000,
        breaker_dir: Path | str | None = None,
    ) -> None:
        self.chain = _Chain(providers, breaker_dir)
        self.last_provider = ""  # the provider that spoke the last text
        self.model = model
        self.voice = voice or ""
        self.call_rate = sample_rate
        # One rate for the whole chain: the first provider's (a fallback at another rate is resampled).
        self.sample_rate = sample_rate if self.chain.providers[0].voicebot else 24000

    def stream(self, text: str) -> Iterator[Audio]:
        errors: list[str] = []
        for provider, url, breaker in self.chain.targets():
            sent = False
            try:
                for audio in self._ask(provider, url, text):
                    sent = True
                    yield audio
                breaker.success()
                self.last_provider = provider.name  # for the call's costs
                return
            except Exception as exc:
                if sent:  # half a prompt was said: do not say it again in another voice
                    raise TtsError(f"{provider.name} stopped mid-prompt: {_why(exc)}") from exc
                if not _is_request_fault(exc):
                    breaker.failure()
                errors.append(f"{provider.name} ({url}): {_why(exc)}")
                log.warning("tts.provider_failed", provider=provider.name, url=url, error=_why(exc))
        raise TtsError("every voice provider failed: " + "; ".join(errors))

    def _ask(self, provider: ProviderConfig, url: str, text: str) -> Iterator[Audio]:
        rate = self.call_rate if provider.voicebot else 24000
        body: dict[str, Any] = {
            "model": self.model if provider.voicebot else provider.model,
            "voice": self.voice or provider.voice or "default",
            "input": text,
            "response_format": "pcm",
        }
        if provider.voicebot:
            body["sample_rate"] = rate  # voicebot's extension; OpenAI's pcm is always 24 kHz
        with (
            _Outstanding(url),
            _client(url, provider).stream(
                "POST", "audio/speech", json=body, headers=_trace_headers()
            ) as response,
        ):
            if not response.is_success:
                response.read()
                _check(response)
            rest = b""
            for chunk in response.iter_bytes():
                data = rest + chunk
                cut = len(data) // 2 * 2
                rest = data[cut:]
                if cut:
                    samples = np.frombuffer(data[:cut], dtype="<i2").astype(np.float32) / 32768.0
                    if rate != self.sample_rate:
                        import soxr

                        samples = soxr.resample(samples, rate, self.sample_rate, quality="HQ").astype(
                            np.float32
                        )
                    yield samples
