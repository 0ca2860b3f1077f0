"""What comes out of a call's engine: everything the call should do, none of it done yet.

The effects runner carries each out in a task it owns and reports the outcome back as an event
(voicebot/engine/events.py) with the same request id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voicebot.dialplan.events import ScheduleCallback, ToolCall


@dataclass(frozen=True)
class Speak:
    """Say ``text`` (or play the WAV ``audio``), then queue ``mark``. ``lead_mark`` goes before the
    first audio (a turn's reply or the greeting: its wire time is measured); ``cache``: a fixed text
    of the plan, kept in the prompt cache (rendered ones may hold caller data)."""

    req: int
    text: str
    mark: str
    audio: str | None = None
    lead_mark: str | None = None
    cache: bool = False


@dataclass(frozen=True)
class StopSpeech:
    """Barge-in: stop synthesising, drop everything queued and not yet played."""


@dataclass(frozen=True)
class Decode:
    """Recognise ``audio`` (one decode at a time, in the order asked)."""

    req: int
    audio: bytes
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class AskLlm:
    """Stream the LLM's next reply sentence by sentence (LlmSentence..., then LlmDone)."""

    req: int
    instructions: str
    messages: tuple[tuple[str, str], ...]
    tools: tuple[dict[str, Any], ...] = ()  # function tools it may call (LlmDone carries the call)


@dataclass(frozen=True)
class CancelLlm:
    req: int


@dataclass(frozen=True)
class CallTool:
    """Run a dialplan tool call; ``key`` is its idempotency key (the same on a retry after a crash)."""

    req: int
    call: ToolCall
    key: str


@dataclass(frozen=True)
class BookCallback:
    """Book a callback (voicebot/outbound/book.py); ``key`` makes a retry after a crash the same booking."""

    req: int
    callback: ScheduleCallback
    key: str


@dataclass(frozen=True)
class CancelTool:
    req: int


@dataclass(frozen=True)
class Transfer:
    queue: str
    reason: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hangup:
    reason: str


@dataclass(frozen=True)
class SaveRecording:
    """Keep the caller's message (s16le at the call's rate); answer with RecordingSaved."""

    req: int
    pcm: bytes


@dataclass(frozen=True)
class Checkpoint:
    """The engine's state after a step: enough to resume the call in a new worker."""

    state: dict[str, Any]


@dataclass(frozen=True)
class TurnMetrics:
    """A finished turn's stage times (or the greeting's)."""

    record: dict[str, Any]


@dataclass(frozen=True)
class Note:
    """An event for the call's record (and, with ``log``, a log line of that name)."""

    kind: str
    data: dict[str, Any]
    log: str | None = None


Effect = (
    Speak
    | StopSpeech
    | Decode
    | AskLlm
    | CancelLlm
    | CallTool
    | BookCallback
    | CancelTool
    | Transfer
    | Hangup
    | SaveRecording
    | Checkpoint
    | TurnMetrics
    | Note
)
