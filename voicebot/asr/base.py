"""The ASR backend interface and its registry.

A backend transcribes one caller turn (VAD-segmented s16le PCM at the call rate). ``hints`` are the
phrases the current step expects (menu options, queue names); backends use them to bias recognition
where they can. Backends that can decode while the caller speaks also implement :class:`StreamingAsr`:
one :class:`AsrStream` per turn, fed 20 ms frames, giving partial text as it changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from voicebot.errors import ConfigError, VoicebotError


class AsrError(VoicebotError):
    """Recognition failed (the backend says why)."""

    retryable = True


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float  # 0..1
    audio_s: float
    decode_s: float
    provider: str = ""  # who decoded it, for costs: a provider's name (inference chains); "" = in-process


def joined(parts: Sequence[Transcript | None]) -> Transcript | None:
    """One transcript for a turn decoded in parts (voicebot/engine/listener.py segments), in order.

    Confidence is the parts' weighted by their audio; a part whose decode failed (None) is left out,
    and None comes back only when every part failed."""
    got = [p for p in parts if p is not None]
    if not got:
        return None
    spoken = [p for p in got if p.text]
    audio = sum(p.audio_s for p in spoken)
    confidence = sum(p.confidence * p.audio_s for p in spoken) / audio if audio else 0.0
    return Transcript(
        text=" ".join(p.text for p in spoken),
        confidence=round(confidence, 3),
        audio_s=round(sum(p.audio_s for p in got), 3),
        decode_s=round(sum(p.decode_s for p in got), 3),
        provider=next((p.provider for p in got if p.provider), ""),
    )


def hints_prompt(hints: Sequence[str]) -> str:
    """The step's expected phrases as text said just before the turn: what Whisper is prompted with,
    and the ``prompt`` of the OpenAI transcription API (so a remote recogniser is biased the same)."""
    return "Options: " + ", ".join(hints) + "." if hints else ""


def prompt_hints(prompt: str) -> list[str]:
    """The phrases back from :func:`hints_prompt`'s text (for recognisers that take a phrase list)."""
    if not prompt.startswith("Options: "):
        return []
    return [h for h in prompt.removeprefix("Options: ").removesuffix(".").split(", ") if h]


class AsrBackend(Protocol):
    name: str

    def transcribe(self, pcm: bytes, sample_rate: int, hints: Sequence[str] = ()) -> Transcript: ...


class AsrStream(Protocol):
    """One caller turn decoded as it arrives. Calls block on the decoder: keep them off the event loop
    that paces audio, and feed one stream from one thread at a time."""

    def feed(self, pcm: bytes) -> str | None:
        """Decode more s16le PCM (any length); return the turn's text so far if it changed, else None."""
        ...

    def finish(self) -> Transcript:
        """Flush the decoder and return the whole turn; the stream is spent afterwards."""
        ...


@runtime_checkable
class StreamingAsr(AsrBackend, Protocol):
    """Optional: a backend that can also decode a turn incrementally (``isinstance(b, StreamingAsr)``)."""

    def open(self, sample_rate: int, hints: Sequence[str] = ()) -> AsrStream: ...


_REGISTRY: dict[str, Callable[..., AsrBackend]] = {}


def register(name: str) -> Callable[[Callable[..., AsrBackend]], Callable[..., AsrBackend]]:
    def deco(factory: Callable[..., AsrBackend]) -> Callable[..., AsrBackend]:
        _REGISTRY[name] = factory
        return factory

    return deco


def create(name: str, **options: Any) -> AsrBackend:
    if name == "service":
        from voicebot.inference import client  # noqa: F401  (registration side effect)
    else:
        from voicebot.asr import vosk, whisper  # noqa: F401  (registration side effect)

    try:
        factory = _REGISTRY[name]
    except KeyError:
        choices = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown ASR backend {name!r}; available: {choices}") from None
    return factory(**options)


class FailingAsr:
    """A recogniser whose decodes fail at ``rate`` (fault drills, settings asr.inject_failures): the
    real backend runs otherwise; a failure raises AsrError as a broken backend would."""

    def __init__(self, inner: AsrBackend, rate: float, seed: int | None = None) -> None:
        import random

        self.inner = inner
        self.name = inner.name
        self.rate = rate
        self._random = random.Random(seed)

    def transcribe(self, pcm: bytes, sample_rate: int, hints: Sequence[str] = ()) -> Transcript:
        if self._random.random() < self.rate:
            raise AsrError("injected failure (settings asr.inject_failures)")
        return self.inner.transcribe(pcm, sample_rate, hints)
