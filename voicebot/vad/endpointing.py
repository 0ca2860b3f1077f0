"""Sans-I/O turn endpointing: frame verdicts in (with ``now``), turn events out.

States follow the usual plain machine: QUIET -> STARTING (speech seen, not yet long enough) ->
SPEAKING (a turn is open) -> STOPPING (silence seen, waiting out the hangover) -> QUIET. Short blips
("mhm", clicks) never reach SPEAKING, so they neither open a turn nor barge in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class VadState(Enum):
    QUIET = "quiet"
    STARTING = "starting"
    SPEAKING = "speaking"
    STOPPING = "stopping"


@dataclass(frozen=True)
class EndpointParams:
    """Per-step tunables (a dialplan collect step may override them)."""

    start_ms: int = 120  # speech needed (within start_window_ms) before a turn opens (and barges in)
    start_window_ms: int = 200
    hangover_ms: int = 700  # silence that ends a turn
    # A turn is ended after this long (noise that fools the VAD would otherwise hold it open for
    # ever); long speech is decoded in segments meanwhile (voicebot/engine/listener.py), so a caller
    # can talk for this long and be understood whole.
    max_turn_ms: int = 120000

    def __post_init__(self) -> None:
        if not 0 < self.start_ms <= self.start_window_ms:
            raise ValueError("start_ms must be > 0 and <= start_window_ms")
        if self.hangover_ms <= 0 or self.max_turn_ms <= self.start_ms:
            raise ValueError("hangover_ms must be > 0 and max_turn_ms > start_ms")


@dataclass(frozen=True)
class SpeechStarted:
    at: float  # when the first speech frame of the turn began


@dataclass(frozen=True)
class SpeechEnded:
    at: float  # end of the last speech frame
    duration_s: float
    truncated: bool = False


TurnEvent = SpeechStarted | SpeechEnded


class Endpointer:
    """Feed one verdict per frame; get SpeechStarted / SpeechEnded events."""

    def __init__(self, params: EndpointParams, frame_ms: int = 20) -> None:
        self.params = params
        self.frame_s = frame_ms / 1000.0
        self.state = VadState.QUIET
        self._first_speech = 0.0
        self._last_speech_end = 0.0
        self._speech_s = 0.0
        self._turn_start = 0.0

    def feed(self, speech: bool, now: float) -> list[TurnEvent]:
        """``now`` is the start time of the frame."""
        p = self.params
        end = now + self.frame_s
        if self.state is VadState.QUIET:
            if speech:
                self.state, self._first_speech, self._speech_s = VadState.STARTING, now, self.frame_s
                self._last_speech_end = end
            return self._maybe_open(end)
        if self.state is VadState.STARTING:
            if speech:
                self._speech_s += self.frame_s
                self._last_speech_end = end
                return self._maybe_open(end)
            if end - self._first_speech > p.start_window_ms / 1000.0:
                self.state = VadState.QUIET  # a blip: never a turn
            return []
        if speech:
            self.state, self._last_speech_end = VadState.SPEAKING, end
        else:
            self.state = VadState.STOPPING
        if self._last_speech_end - self._turn_start >= p.max_turn_ms / 1000.0:
            return [self._close(truncated=True)]
        if self.state is VadState.STOPPING and end - self._last_speech_end >= p.hangover_ms / 1000.0:
            return [self._close(truncated=False)]
        return []

    def reset(self) -> None:
        self.state = VadState.QUIET

    def _maybe_open(self, end: float) -> list[TurnEvent]:
        if self.state is VadState.STARTING and self._speech_s * 1000.0 >= self.params.start_ms - 1e-6:
            self.state = VadState.SPEAKING
            self._turn_start = self._first_speech
            return [SpeechStarted(self._first_speech)]
        return []

    def _close(self, truncated: bool) -> SpeechEnded:
        self.state = VadState.QUIET
        return SpeechEnded(
            self._last_speech_end, round(self._last_speech_end - self._turn_start, 3), truncated
        )
