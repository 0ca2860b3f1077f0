"""Caller audio -> turn events (sans-I/O apart from the VAD call): the input side of turn-taking.

Besides the turn's start and end it reports a *pause*: ``pause_ms`` of silence after speech (short
enough to beat the hangover, long enough to skip the gaps between words). The session decodes
speculatively from there, so that by the time the hangover has confirmed the end of the turn the
transcript is (nearly) ready; if the caller resumes, the speculation is dropped.

A long turn (a caller reading out a complaint) is handed out in *segments* that fit a recogniser's
window (Whisper's is 30 s): once the turn holds ``segment_s`` of audio it is cut at the next pause,
or at the quietest recent frame when no pause comes before ``max_segment_s``. Each segment is
decoded while the caller goes on; the turn's transcript is the segments' texts in order followed by
the last part's (``TurnEnded.audio`` and ``TurnPaused.audio`` cover only what came after the last
cut). Nothing the caller says is dropped however long they talk.
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
class TurnSegment:
    """A finished part of a turn that goes on: decode it now, keep its text for the turn."""

    at: float
    audio: bytes
    index: int  # 0, 1, ... within the turn


@dataclass(frozen=True)
class TurnEnded:
    at: float
    duration_s: float
    audio: bytes  # what came after the turn's last segment (all of it for a short turn)
    segments: int = 0  # TurnSegments of this turn that came before


ListenEvent = TurnStarted | TurnPaused | TurnResumed | TurnSegment | TurnEnded


class Listener:
    """Feed 20 ms frames; get turn events. Time is the caller's audio time (frames x 20 ms)."""

    def __init__(
        self,
        sample_rate: int,
        params: EndpointParams | None = None,
        preroll_frames: int = 15,
        pause_ms: int = 300,
        segment_s: float = 20.0,
        max_segment_s: float = 27.0,
    ) -> None:
        self.vad = SpeechClassifier(sample_rate)
        self.endpointer = Endpointer(params or EndpointParams())
        self.pause_ms = pause_ms
        self.pause_frames = max(1, pause_ms // 20)
        # 27 s + the 2 s of silence the Whisper backend adds still fits its 30 s window.
        self.segment_frames = int(segment_s / FRAME_S)
        self.max_segment_frames = max(self.segment_frames, int(max_segment_s / FRAME_S))
        self.silent = 0  # silent frames in a row
        self.silent_paused = False  # a TurnPaused went out for the current silence
        self.preroll: collections.deque[bytes] = collections.deque(maxlen=preroll_frames)
        self.turn: list[bytes] | None = None  # the open turn's frames since its last segment
        self.speech: list[bool] = []  # the VAD's verdict for each frame of ``turn``
        self.segments = 0  # segments of the open turn handed out so far
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
            self.speech.append(speech)
        else:
            self.preroll.append(pcm)
        before = self.endpointer.state
        self.silent = 0 if speech else self.silent + 1
        out: list[ListenEvent] = []
        for event in self.endpointer.feed(speech, at):
            if isinstance(event, SpeechStarted):
                self.turn = list(self.preroll)
                self.speech = [True] * len(self.turn)
                self.segments = 0
                out.append(TurnStarted(event.at))
            else:
                audio, self.turn = b"".join(self.turn or []), None
                self.preroll.clear()
                out.append(TurnEnded(event.at, event.duration_s, audio, self.segments))
                return out
        after = self.endpointer.state
        paused = after is VadState.STOPPING and self.silent == self.pause_frames and self.turn is not None
        if self.turn is not None and (segment := self._segment(at, paused)) is not None:
            out.append(segment)  # the pause's speculative decode would cover only the segment
        elif paused and self.turn is not None:
            out.append(TurnPaused(at, b"".join(self.turn)))
        elif before is VadState.STOPPING and after is VadState.SPEAKING and self.silent_paused:
            out.append(TurnResumed(at))
        self.silent_paused = after is VadState.STOPPING and self.silent >= self.pause_frames
        return out

    def _segment(self, at: float, paused: bool) -> TurnSegment | None:
        """Cut the open turn if it is long enough: at a pause after ``segment_s``, else at the last
        silent frame of the last 3 s once ``max_segment_s`` is reached (mid-word only if there is none)."""
        assert self.turn is not None
        n = len(self.turn)
        if n >= self.segment_frames and paused:
            cut = n
        elif n >= self.max_segment_frames:
            recent = range(n - 1, max(0, n - 150) - 1, -1)
            cut = next((i + 1 for i in recent if not self.speech[i]), n)
        else:
            return None
        audio = b"".join(self.turn[:cut])
        self.turn, self.speech = self.turn[cut:], self.speech[cut:]
        self.segments += 1
        return TurnSegment(at, audio, self.segments - 1)
