"""The TTS backend interface and its registry.

A backend turns text into float32 mono audio at its own sample rate, sentence by sentence, so the
first sentence can play while later ones are synthesised. Backends register by name; config picks one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from voicebot.errors import ConfigError, VoicebotError

Audio = npt.NDArray[np.float32]


class TtsError(VoicebotError):
    """Synthesis failed (the backend says why)."""

    retryable = True


class TtsBackend(Protocol):
    name: str
    voice: str
    sample_rate: int

    def stream(self, text: str) -> Iterator[Audio]:
        """Yield audio (float32, -1..1) sentence by sentence."""
        ...


_REGISTRY: dict[str, Callable[..., TtsBackend]] = {}


def register(name: str) -> Callable[[Callable[..., TtsBackend]], Callable[..., TtsBackend]]:
    def deco(factory: Callable[..., TtsBackend]) -> Callable[..., TtsBackend]:
        _REGISTRY[name] = factory
        return factory

    return deco


def create(name: str, **options: Any) -> TtsBackend:
    """Instantiate a registered backend; unknown names say what is available."""
    if name == "service":
        from voicebot.inference import client  # noqa: F401  (registration side effect)
    else:
        from voicebot.tts import coqui, espeak, hibari, piper  # noqa: F401  (registration side effect)

    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown TTS backend {name!r}; available: {', '.join(sorted(_REGISTRY))}"
        ) from None
    return factory(**options)


def synthesize(backend: TtsBackend, text: str) -> Audio:
    parts = list(backend.stream(text))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
