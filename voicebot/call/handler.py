"""The built-in call handler (sans-I/O): greet, react to keys, transfer on a digit, hang up on #.

It takes events with ``now`` and returns actions; the per-call worker process does the I/O. The
dialplan interpreter replaces it behind the same kind of interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from voicebot.call.params import CallWorkerParams
from voicebot.dialplan.interpreter import AgentTurn, ToolCall

_SPOKEN = {"*": "star", "#": "hash"}
_GOODBYES = frozenset({"goodbye", "bye"})


def _words(text: str) -> set[str]:
    return {w.strip(".,!?;:'\"").lower() for w in text.split()}


@dataclass(frozen=True)
class Play:
    text: str
    mark: str
    audio: str | None = None  # play this WAV instead of synthesising text


@dataclass(frozen=True)
class StopAudio:
    """Flush queued bot audio (barge-in by key press or by the caller speaking)."""


@dataclass(frozen=True)
class Transfer:
    queue: str
    reason: str
    headers: dict[str, str] = field(default_factory=dict)  # name -> value; sent as X-Voicebot-<name>


@dataclass(frozen=True)
class Hangup:
    reason: str


@dataclass(frozen=True)
class ArmTimer:
    """Start (or restart) the no-input timer: the logic gets on_no_input() when it fires."""

    seconds: float


@dataclass(frozen=True)
class EndOfTurn:
    """The caller's silence that ends a spoken answer, from now on (the step's setting)."""

    ms: int


@dataclass(frozen=True)
class RunAgent:
    """Stream the LLM's reply into the TTS; the logic gets agent_sentence() per sentence, then
    on_agent_reply() with what was said."""

    turn: AgentTurn


@dataclass(frozen=True)
class CancelAgent:
    """The caller interrupted the LLM's reply: stop asking it (what was said so far stands)."""


@dataclass(frozen=True)
class RunTool:
    """Run a dialplan tool call (HTTP) off the event loop; the result goes to on_tool_result()."""

    call: ToolCall


@dataclass(frozen=True)
class StartRecording:
    """Record the caller once ``after_mark`` has played, until # or ``max_s``."""

    max_s: float
    after_mark: str


Action = (
    Play
    | StopAudio
    | Transfer
    | Hangup
    | ArmTimer
    | RunTool
    | StartRecording
    | RunAgent
    | CancelAgent
    | EndOfTurn
)


@dataclass
class BuiltinHandler:
    NOT_UNDERSTOOD: ClassVar[str] = (
        "Sorry, I did not catch that. You can say sales or support, or press a key."
    )

    params: CallWorkerParams
    digits: list[str] = field(default_factory=list)
    transferring: str | None = None
    ending: bool = False
    playing: bool = False
    _marks: int = 0

    def prompts(self) -> list[str]:
        """Every text this handler can say: warmed into the prompt cache before calls arrive."""
        texts = [self.params.greeting, "Goodbye.", self.NOT_UNDERSTOOD]
        for queue in {*self.params.transfer_digits.values(), *self.params.speech_keywords.values()}:
            texts += [self._transfer_text(queue), self._transfer_failed_text(queue)]
        texts += [self._pressed_text(d) for d in "0123456789*#"]
        return texts

    def start(self, now: float) -> list[Action]:
        return [self._play(self.params.greeting, "greeting")]

    def on_dtmf(self, digit: str, now: float) -> list[Action]:
        if self.transferring or self.ending:
            return []
        self.digits.append(digit)
        actions: list[Action] = [StopAudio()] if self.playing else []
        queue = self.params.transfer_digits.get(digit)
        if queue is not None:
            self.transferring = queue
            actions.append(self._play(self._transfer_text(queue), "transfer:" + queue))
        elif digit == self.params.hangup_digit:
            self.ending = True
            actions.append(self._play("Goodbye.", "goodbye"))
        else:
            actions.append(self._play(self._pressed_text(digit), "ack"))
        return actions

    def expects(self, text: str) -> bool:
        """Is this (partial) transcript already a complete answer? Then the turn may end early."""
        words = _words(text)
        return self._keyword_queue(words) is not None or bool(words & _GOODBYES)

    def on_transcript(self, text: str, confidence: float, now: float) -> list[Action]:
        """A recognised caller turn: a queue keyword transfers, a goodbye ends, anything else reprompts."""
        if self.transferring or self.ending:
            return []
        words = _words(text)
        queue = self._keyword_queue(words)
        if queue is not None:
            self.transferring = queue
            return [self._play(self._transfer_text(queue), "transfer:" + queue)]
        if words & _GOODBYES:
            self.ending = True
            return [self._play("Goodbye.", "goodbye")]
        return [self._play(self.NOT_UNDERSTOOD, "reprompt")]

    def _keyword_queue(self, words: set[str]) -> str | None:
        return next((q for word, q in self.params.speech_keywords.items() if word in words), None)

    def on_speech_started(self, now: float) -> list[Action]:
        """The caller started a turn (the endpointer already ignored blips): stop talking over them."""
        if self.playing and self.params.barge_in:
            self.playing = False
            return [StopAudio()]
        return []

    def on_played(self, mark: str, now: float) -> list[Action]:
        if mark.endswith(f"#{self._marks}"):
            self.playing = False
        kind = mark.split("#", 1)[0]
        if kind.startswith("transfer:") and self.transferring:
            return [Transfer(self.transferring, "caller pressed a transfer digit")]
        if kind == "goodbye":
            return [Hangup("caller pressed the hangup digit")]
        return []

    def on_speech_ended(self, now: float, will_transcribe: bool) -> list[Action]:
        return []

    def on_no_input(self, now: float) -> list[Action]:
        return []  # the built-in handler never arms a timer

    def on_tool_result(self, ok: bool, data: object, now: float) -> list[Action]:
        return []  # nor calls tools

    def on_recording_done(self, path: str, seconds: float, now: float) -> list[Action]:
        return []  # nor records

    sensitive = False  # never collects PINs: key presses and transcripts may be logged
    voice: str | None = None  # the configured TTS voice

    def hints(self) -> list[str]:
        """Words that mean something here: the speech keywords (queue names, goodbye)."""
        return sorted({*self.params.speech_keywords, *_GOODBYES})

    def on_transfer_result(self, queue: str, ok: bool, now: float, reason: str = "") -> list[Action]:
        if ok:
            return []  # the UA worker ends our leg once the transfer succeeded
        self.transferring = None
        return [self._play(self._transfer_failed_text(queue), "transfer_failed")]

    def _play(self, text: str, kind: str) -> Play:
        self._marks += 1
        self.playing = True
        return Play(text, f"{kind}#{self._marks}")

    @staticmethod
    def _transfer_text(queue: str) -> str:
        return f"Transferring you to {queue}."

    @staticmethod
    def _transfer_failed_text(queue: str) -> str:
        return f"Sorry, nobody in {queue} can take your call right now."

    @staticmethod
    def _pressed_text(digit: str) -> str:
        return f"You pressed {_SPOKEN.get(digit, digit)}."
