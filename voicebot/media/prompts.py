"""Spoken prompts as call-rate PCM, synthesised by a TTS backend once and cached on disk.

The cache key is backend, voice, sample rate and text, so the supervisor can warm every static prompt
before calls arrive and a call's greeting starts with its first outgoing frame. The backend is created
lazily: a call worker whose prompts are all cached never loads a model.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.logs import get_logger
from voicebot.tts.base import TtsBackend, TtsError, create
from voicebot.tts.resample import to_call_pcm

log = get_logger(__name__)


_LOADED: dict[tuple[str, str], TtsBackend] = {}


class Prompts:
    """Text -> s16le PCM at ``sample_rate``, through ``backend`` (then ``fallback``) and a disk cache."""

    def __init__(
        self,
        cache_dir: Path,
        sample_rate: int,
        backend: str = "hibari",
        fallback: str | None = "espeak",
        voice: str | None = None,
        options: dict[str, dict[str, Any]] | None = None,
        service: dict[str, Any] | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self.sample_rate = sample_rate
        self.voice = voice  # None: the backend's default voice
        self.options = options or {}  # backend name -> constructor options (model paths, speakers)
        self._names = [backend] + ([fallback] if fallback and fallback != backend else [])
        self.service = service  # {"providers": [...], "breaker_dir": ...}: synthesis by a service
        self._backend: TtsBackend | None = None
        # (voice provider, characters) of the last text synthesised by stream(); None: it came from the cache
        self.synthesised: tuple[str, int] | None = None

    def path(self, text: str) -> Path:
        voice = self.voice or ""
        key = hashlib.sha256(f"v2|{self._names[0]}|{voice}|{self.sample_rate}|{text}".encode()).hexdigest()
        return self.cache_dir / f"{key[:24]}.s16"

    def pcm(self, text: str) -> bytes:
        return b"".join(self.stream(text))

    def stream(self, text: str, cache: bool = True) -> Iterator[bytes]:
        """Call-rate PCM, sentence by sentence as the backend makes it (the first sentence can play
        while the next is synthesised); a cached text comes whole from disk. ``cache=False``: the
        text (it may hold caller data) is not written to the cache. Raises TtsError."""
        path = self.path(text)
        self.synthesised = None
        if path.is_file():
            yield path.read_bytes()
            return
        backend = self.backend()
        parts: list[bytes] = []
        for audio in backend.stream(text):
            pcm = to_call_pcm(audio, backend.sample_rate, self.sample_rate)
            if not parts:
                pcm = trim_leading_silence(pcm, self.sample_rate)
            parts.append(pcm)
            yield pcm
        self.synthesised = (getattr(backend, "last_provider", "") or backend.name, len(text))
        if cache:
            self._save(path, b"".join(parts))

    def warm(self) -> None:
        """Load the backend and synthesise once, uncached (hibari's first synthesis costs ~0.4 s
        more than the next ones): for workers whose calls will speak texts nobody cached."""
        for _ in self.backend().stream("Hello."):
            pass

    def _save(self, path: Path, pcm: bytes) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pcm)
        os.replace(tmp, path)  # atomic: concurrent workers never read half a prompt

    def backend(self) -> TtsBackend:
        if self._backend is None:
            errors = []
            for i, name in enumerate(self._names):
                options = dict(self.options.get(name, {}))
                if self.voice and i == 0:
                    options["voice"] = self.voice  # the dialplan's voice wins for the main backend
                factory = name
                if self.service is not None:  # the service has the model; we name what to use
                    factory, options = (
                        "service",
                        {
                            **self.service,
                            "model": name,
                            "voice": self.voice if i == 0 else None,
                            "sample_rate": self.sample_rate,
                        },
                    )
                key = (factory, repr(sorted((k, repr(v)) for k, v in options.items())))
                try:
                    if key not in _LOADED:  # one load per process and voice: models are big
                        _LOADED[key] = create(factory, **options)
                    self._backend = _LOADED[key]
                    break
                except TtsError as exc:
                    errors.append(str(exc))
                    log.warning("tts.backend_unavailable", backend=name, voice=self.voice, error=str(exc))
            if self._backend is None:
                raise TtsError("no TTS backend could start: " + "; ".join(errors))
        return self._backend


def trim_leading_silence(pcm: bytes, sample_rate: int, floor: int = 100, keep_ms: int = 20) -> bytes:
    """Drop the silence TTS engines put before the first word (hibari: ~230 ms): callers hear the
    greeting that much sooner. ``floor`` is an absolute sample level (~-50 dBFS)."""
    samples = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > floor)
    if loud.size == 0:
        return pcm
    start = max(0, int(loud[0]) - sample_rate * keep_ms // 1000)
    return samples[start:].tobytes()
