"""Caller audio -> turn events (sans-I/O apart from the VAD call): the input side of turn-taking.

Besides the turn's start and end it reports a *pause*: ``pause_ms`` of silence after speech (short
enough to beat the hangover, long enough to skip the gaps between words). The session decodes
speculatively from there, so that by the time the hangover has confirmed the end of the turn the
transcript is (nearly) ready; if the caller resumes, the speculation is dropped.
"""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass

from voicebot.vad.classifier import SpeechClassifier
from voicebot.vad.endpointing import Endpointer, EndpointParams, SpeechStarted, VadState

FRAME_S = 0.02


@dataclass(frozen=True)
class TurnStarted:
    at: float  # audio time of the first speech frame


@dataclass(frozen=True)
class TurnPaused:
    at: float
    audio: bytes  # the turn so far (with preroll)


@dataclass(frozen=True)
class TurnResumed:
    at: float


@dataclass(frozen=True)
class TurnEnded:
    at: float
    duration_s: float
    audio: bytes


ListenEvent = TurnStarted | TurnPaused | TurnResumed | TurnEnded


class Listener:
    """Feed 20 ms frames; get turn events. Time is the caller's audio time (frames x 20 ms)."""

    def __init__(
        self,
        sample_rate: int,
        params: EndpointParams | None = None,
        preroll_frames: int = 15,
        pause_ms: int = 300,
    ) -> None:
        self.vad = SpeechClassifier(sample_rate)
        self.endpointer = Endpointer(params or EndpointParams())
        self.pause_ms = pause_ms
        self.pause_frames = max(1, pause_ms // 20)
        self.silent = 0  # silent frames in a row
        self.silent_paused = False  # a TurnPaused went out for the current silence
        self.preroll: collections.deque[bytes] = collections.deque(maxlen=preroll_frames)
        self.turn: list[bytes] | None = None
        self.frames = 0

    def end_of_turn(self, ms: int) -> None:
        """Set the silence that ends a turn (per dialplan step); the pause that starts a speculative
        decode stays well inside it."""
        self.endpointer.params = dataclasses.replace(self.endpointer.params, hangover_ms=ms)
        self.pause_frames = max(1, min(self.pause_ms, ms - 200) // 20)

    def feed(self, pcm: bytes) -> list[ListenEvent]:
        at = self.frames * FRAME_S
        self.frames += 1
        try:
            speech = self.vad.classify(pcm).speech
        except ValueError:
            return []  # a frame of the wrong size: skip it rather than guess
        if self.turn is not None:
            self.turn.append(pcm)
        else:
            self.preroll.append(pcm)
        before = self.endpointer.state
        self.silent = 0 if speech else self.silent + 1
        out: list[ListenEvent] = []
        for event in self.endpointer.feed(speech, at):
            if isinstance(event, SpeechStarted):
                self.turn = list(self.preroll)
                out.append(TurnStarted(event.at))
            else:
                audio, self.turn = b"".join(self.turn or []), None
                self.preroll.clear()
                out.append(TurnEnded(event.at, event.duration_s, audio))
                return out
        after = self.endpointer.state
        if after is VadState.STOPPING and self.silent == self.pause_frames and self.turn is not None:
            out.append(TurnPaused(at, b"".join(self.turn)))
        elif before is VadState.STOPPING and after is VadState.SPEAKING and self.silent_paused:
            out.append(TurnResumed(at))
        self.silent_paused = after is VadState.STOPPING and self.silent >= self.pause_frames
        return out
