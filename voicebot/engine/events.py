"""What goes into a call's engine: one vocabulary for everything that happens to a call.

The effects runner (voicebot/callworker/runner.py) turns IPC messages and the outcomes of effects into
these; every one that answers an effect carries the effect's request id, so a late answer to a
request the engine has given up on (barge-in, a watchdog) is recognised and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicebot.asr.base import Transcript


@dataclass(frozen=True)
class Audio:
    """20 ms of caller audio (s16le at the call's rate)."""

    pcm: bytes


@dataclass(frozen=True)
class Key:
    digit: str
    method: str = "rfc4733"


@dataclass(frozen=True)
class Played:
    """Everything queued before ``mark`` has gone out to the caller."""

    mark: str


@dataclass(frozen=True)
class Dropped:
    """``mark`` will never play: its audio was flushed (barge-in) or never sent."""

    mark: str


@dataclass(frozen=True)
class SpeechReady:
    """The first audio of Speak ``req`` is queued for the caller (its TTS first audio)."""

    req: int


@dataclass(frozen=True)
class SpeakFailed:
    """Speak ``req`` could not be synthesised by any voice (its mark still follows)."""

    req: int
    error: str


@dataclass(frozen=True)
class Decoded:
    req: int
    transcript: Transcript


@dataclass(frozen=True)
class DecodeFailed:
    req: int
    error: str


@dataclass(frozen=True)
class LlmSentence:
    req: int
    text: str


@dataclass(frozen=True)
class LlmDone:
    """The LLM's reply to ``req`` is over (ok), or it could not answer (the error says why)."""

    req: int
    ok: bool
    error: str = ""
    tool_call: tuple[str, str, str] | None = None  # (id, name, arguments JSON): the reply asks for a tool
    usage: dict[str, Any] | None = None  # model, tokens_in, tokens_out, first_token_ms, fallbacks


@dataclass(frozen=True)
class ToolDone:
    req: int
    ok: bool
    data: Any  # the JSON reply, or (not ok) the reason


@dataclass(frozen=True)
class TransferDone:
    queue: str
    ok: bool
    status: int
    reason: str = ""


@dataclass(frozen=True)
class RecordingSaved:
    req: int
    path: str  # "" when nothing was kept
    seconds: float


@dataclass(frozen=True)
class CallEnded:
    """The call is over on the SIP side (caller hung up, transfer completed, UA ended it)."""

    reason: str


Event = (
    Audio
    | Key
    | Played
    | Dropped
    | SpeechReady
    | SpeakFailed
    | Decoded
    | DecodeFailed
    | LlmSentence
    | LlmDone
    | ToolDone
    | TransferDone
    | RecordingSaved
    | CallEnded
)
