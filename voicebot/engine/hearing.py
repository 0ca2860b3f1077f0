"""Caller audio -> decode requests -> one transcript per caller turn (sans-I/O).

Owns the listener (VAD and endpointing, voicebot/engine/listener.py), the speculation bookkeeping
(voicebot/engine/speculation.py) and the parts a turn is decoded in:

* at every pause the turn so far is decoded speculatively, one decode at a time, always the newest
  pause; a decode that covers everything the caller said, while they are still silent, may answer
  the turn at once when the step accepts it;
* a long turn's segments are decoded while the caller goes on;
* at the end of the turn its last part is decoded (or the speculative decode that covers it is
  used), and the parts' words are joined in order;
* a turn that ended without an answer when the caller speaks again joins the new turn.

A failed decode counts as a part with no words; a turn whose every part failed is answered with
``None`` (the engine makes that the step's no-match path: the caller hears the reprompt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from voicebot.asr.base import Transcript, joined
from voicebot.engine.listener import (
    Listener,
    TurnEnded,
    TurnPaused,
    TurnResumed,
    TurnSegment,
    TurnStarted,
)
from voicebot.engine.speculation import Speculation
from voicebot.vad.endpointing import VadState


@dataclass(frozen=True)
class Started:
    audio_t: float  # caller audio time of the turn's first speech


@dataclass(frozen=True)
class Ended:
    audio_t: float
    duration_s: float


@dataclass(frozen=True)
class DecodeRequest:
    req: int
    audio: bytes


@dataclass(frozen=True)
class Answer:
    """The turn's transcript (None: it was heard, but no decode of it worked)."""

    transcript: Transcript | None
    parts: int
    failed: int
    early: bool = False  # taken at a pause, before the end of the turn


@dataclass(frozen=True)
class Heard:
    """Something for the call's record: a pause's decode, a segment, a joined turn."""

    kind: str
    data: dict[str, object]


@dataclass(frozen=True)
class Guess:
    """A decode at a pause covers the whole turn so far and the caller is still silent, but the
    step does not take an early answer: the engine may start working on it (an LLM request) and use
    that work if the turn ends with this transcript."""

    transcript: Transcript


@dataclass(frozen=True)
class Resumed:
    """The caller went on after a pause: a Guess no longer covers the turn."""


Output = Started | Ended | DecodeRequest | Answer | Heard | Guess | Resumed


@dataclass
class _Turn:
    slots: list[int] = field(default_factory=list)  # decode requests, in order
    results: dict[int, Transcript | None] = field(default_factory=dict)
    ended: bool = False
    tail: bytes | None = None  # audio after the last segment, waiting for the speculation in flight


class Hearing:
    """Feed caller frames and decode results; get turn outputs."""

    def __init__(self, sample_rate: int, recognise: bool, next_req: Callable[[], int]) -> None:
        self.listener = Listener(sample_rate)
        self.recognise = recognise  # False: keys only (turns still start, end and barge in)
        self.spec = Speculation()
        self._next_req = next_req
        self._turns: dict[int, _Turn] = {}
        self._kinds: dict[int, tuple[str, int, int]] = {}  # req -> (kind, turn, bytes)
        self._spec_req: int | None = None  # the speculative decode in flight
        self._pause: tuple[int, bytes] | None = None  # the newest pause, not yet decoded
        self._ended_turn: int | None = None
        self.speech_end = 0.0  # wall time the caller's speech ended (from the newest pause)

    @property
    def pending(self) -> set[int]:
        """Decode requests this is still waiting for."""
        return set(self._kinds)

    def caller_silent(self) -> bool:
        return self.listener.endpointer.state is VadState.STOPPING

    def feed(self, pcm: bytes, now: float) -> list[Output]:
        out: list[Output] = []
        for ev in self.listener.feed(pcm):
            if isinstance(ev, TurnStarted):
                out += self._started(ev)
            elif isinstance(ev, TurnPaused):
                self.speech_end = now - self.listener.pause_frames * 0.02
                self.spec.paused(len(ev.audio))
                if self.recognise:
                    self._pause = (self.spec.turn, ev.audio)
                    out += self._speculate()
            elif isinstance(ev, TurnResumed):
                self.spec.resumed()  # a decode cut at that pause no longer covers the turn
                out.append(Resumed())
            elif isinstance(ev, TurnSegment):
                self.spec.segmented()
                self._pause = None
                out.append(Heard("speech_segment", {"audio_t": round(ev.at, 3), "index": ev.index}))
                if self.recognise:
                    out.append(self._request("part", ev.audio))
            elif isinstance(ev, TurnEnded):
                out += self._ended(ev, now)
        return out

    def abandon(self) -> bool:
        """Drop the turn in progress (or ended and still unanswered): the call moved on without it.
        True if there was one."""
        turn = self.spec.turn
        dropped = self.spec.take(turn)
        self._ended_turn, self._pause = None, None
        return dropped

    def decoded(
        self, req: int, result: Transcript | None, accepts: Callable[[str, float], bool]
    ) -> list[Output]:
        """A decode's result (None: it failed or was given up on). Unknown requests are ignored."""
        kind = self._kinds.pop(req, None)
        if kind is None:
            return []
        what, turn, size = kind
        if what == "part":
            state = self._turns.get(turn)
            if state is None:
                return []
            state.results[req] = result
            return self._complete(turn)
        self._spec_req = None
        out: list[Output] = []
        if result is not None and self.spec.current(turn):
            whole = self.spec.guessed(turn, size, result)
            out.append(
                Heard("asr_guess", {"audio_s": result.audio_s, "decode_s": result.decode_s, "whole": whole})
            )
            state = self._turns.get(turn)
            covering = (
                whole
                and self._pause is None
                and state is not None
                and not state.slots  # a turn with earlier parts is answered by all of them together
                and not state.ended
                and self.caller_silent()
            )
            if covering and accepts(result.text, result.confidence) and self.spec.take(turn):
                out.append(Answer(result, 1, 0, early=True))
            elif covering:
                out.append(Guess(result))
        state = self._turns.get(turn)
        if state is not None and state.tail is not None:
            out += self._decide_tail(turn, state)
        return out + self._speculate()

    # -- turns ----------------------------------------------------------------------------------
    def _started(self, ev: TurnStarted) -> list[Output]:
        out: list[Output] = []
        state = _Turn()
        ended, self._ended_turn = self._ended_turn, None
        if ended is not None and self.spec.current(ended) and ended in self._turns:
            old = self._turns[ended]  # the caller paused, then went on: one turn
            if old.tail is not None:  # its last part was waiting for a speculative decode
                out.append(self._request("part", old.tail))  # (it joins old.slots)
                old.tail = None
            state = _Turn(slots=old.slots, results=old.results)
            for req in state.slots:
                if req in self._kinds:
                    kind, _, size = self._kinds[req]
                    self._kinds[req] = (kind, ended + 1, size)
            out.append(Heard("turn_joined", {"parts": len(state.slots)}))
        self.spec.started()
        self._pause = None
        self._turns = {self.spec.turn: state}
        return [*out, Started(ev.at)]

    def _ended(self, ev: TurnEnded, now: float) -> list[Output]:
        turn = self.spec.turn
        out: list[Output] = [Ended(ev.at, ev.duration_s)]
        # The speech ended a hangover ago (a pause may not have been reported: a segment cut there,
        # or the step's end-of-turn silence changed mid-pause).
        self.speech_end = now - self.listener.endpointer.params.hangover_ms / 1000
        self._pause = None  # the tail decode covers it
        state = self._turns.get(turn)
        if not self.recognise or state is None or not self.spec.current(turn):
            return out
        state.ended = True
        self._ended_turn = turn
        state.tail = ev.audio
        if self._spec_req is None or self._kinds.get(self._spec_req, ("", -1, 0))[1] != turn:
            out += self._decide_tail(turn, state)
        return out  # else: decided when the speculative decode in flight comes back

    def _decide_tail(self, turn: int, state: _Turn) -> list[Output]:
        """The turn's last part: the speculative decode if it covers it, else a decode of its own."""
        audio, state.tail = state.tail or b"", None
        guess = self.spec.final() if self.spec.current(turn) else None
        if guess is not None:
            req = self._next_req()
            state.slots.append(req)
            state.results[req] = guess
            return self._complete(turn)
        return [self._request("part", audio)]

    def _complete(self, turn: int) -> list[Output]:
        state = self._turns.get(turn)
        if state is None or not state.ended or state.tail is not None:
            return []
        if any(req not in state.results for req in state.slots):
            return []
        results = [state.results[req] for req in state.slots]
        if not self.spec.take(turn):
            return []
        out: list[Output] = []
        if len(results) > 1:
            out.append(Heard("turn_stitched", {"parts": len(results), "failed": results.count(None)}))
        return [*out, Answer(joined(results), len(results), results.count(None))]

    # -- decodes --------------------------------------------------------------------------------
    def _request(self, kind: str, audio: bytes) -> DecodeRequest:
        req = self._next_req()
        turn = self.spec.turn
        self._kinds[req] = (kind, turn, len(audio))
        if kind == "part":
            self._turns.setdefault(turn, _Turn()).slots.append(req)
        return DecodeRequest(req, audio)

    def _speculate(self) -> list[Output]:
        """Decode the newest pause, unless a speculative decode is in flight (it comes back first)."""
        if self._spec_req is not None or self._pause is None:
            return []
        (turn, audio), self._pause = self._pause, None
        if not self.spec.current(turn):
            return []
        request = self._request("spec", audio)
        self._spec_req = request.req
        return [request]
