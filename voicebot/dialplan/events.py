"""What goes into the dialplan interpreter (events, each with ``now``) and what comes out (actions).

Plain frozen dataclasses: the call worker adapts them to audio, SIP and HTTP; tests script them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


# --- events -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CallStarted:
    """The call is answered. ``today`` (ISO date) lets callers say "tomorrow"; the rest become
    the variables ``caller``, ``called`` and ``call_id``."""

    now: float
    caller: str = ""
    called: str = ""
    call_id: str = ""
    today: str = ""
    # A call the bot placed (a callback): it starts at ``entry`` with ``variables`` carried over.
    entry: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    direction: str = "inbound"


@dataclass(frozen=True)
class SpeechPartial:
    """An interim transcript. The interpreter does not act on it (barge-in is the media layer's)."""

    text: str
    now: float


@dataclass(frozen=True)
class SpeechFinal:
    text: str
    confidence: float
    now: float


@dataclass(frozen=True)
class SpeechUnrecognized:
    """The caller spoke but no text came of it (the recogniser failed or timed out): the step takes
    its no-match path, as for words it did not understand, so the caller hears the reprompt."""

    now: float


@dataclass(frozen=True)
class Dtmf:
    digit: str
    now: float


@dataclass(frozen=True)
class NoInputTimeout:
    """The no-input timer of the latest StartCollect ran out (or, keys being typed, the gap after one)."""

    now: float


@dataclass(frozen=True)
class PlaybackDone:
    mark: str
    now: float


@dataclass(frozen=True)
class TransferResult:
    ok: bool
    now: float
    reason: str = ""  # why it failed ("busy", "no answer", "486 Busy Here"): variable transfer_reason


@dataclass(frozen=True)
class ToolResult:
    ok: bool
    data: Any  # the JSON reply, or (not ok) the reason: variable tool_error
    now: float


@dataclass(frozen=True)
class RecordingDone:
    path: str  # "" when nothing was recorded
    seconds: float
    now: float


@dataclass(frozen=True)
class CallerHungUp:
    now: float


@dataclass(frozen=True)
class AgentReply:
    """The LLM's reply to the latest AgentTurn has been spoken (``text``: what was said; cut short
    when the caller barged in), or (not ok) it could not answer."""

    text: str
    ok: bool
    now: float
    # The LLM asked for a tool: (call id, tool name, arguments as the JSON text it wrote).
    tool_call: tuple[str, str, str] | None = None


Event = (
    CallStarted
    | SpeechPartial
    | SpeechFinal
    | SpeechUnrecognized
    | Dtmf
    | NoInputTimeout
    | PlaybackDone
    | TransferResult
    | ToolResult
    | RecordingDone
    | CallerHungUp
    | AgentReply
)


# --- actions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SayAction:
    """Speak ``text`` (or play ``audio``); answer with PlaybackDone(mark) when it has played."""

    text: str
    barge_in: bool
    mark: str
    audio: str | None = None  # a checked WAV file to play instead of synthesising ``text``


@dataclass(frozen=True)
class StartCollect:
    """Listen for the caller: arm the no-input timer, bias recognition with ``hints``."""

    kind: str
    timeout_s: float
    hints: tuple[str, ...] = ()
    max_digits: int = 1
    terminator: str = "#"
    sensitive: bool = False
    digit_timeout_s: float = 3.0  # once keys are being typed: the gap that ends the entry
    min_confidence: float = 0.0
    end_of_turn_ms: int = 700  # the caller's silence that ends a spoken answer


@dataclass(frozen=True)
class TransferAction:
    """Transfer to ``queue`` (mapped to a SIP URI by the admin config); answer with TransferResult."""

    queue: str
    reason: str
    headers: dict[str, str] = field(default_factory=dict)  # X-Voicebot-<Name>: context for the agent


@dataclass(frozen=True)
class HangupAction:
    disposition: str


@dataclass(frozen=True)
class ToolCall:
    """Call an HTTP integration; the worker answers with ToolResult. URL and body are already rendered."""

    integration: str
    method: str
    url: str
    body: dict[str, Any] | None
    headers: dict[str, str]
    timeout_s: float
    retries: int


@dataclass(frozen=True)
class ScheduleCallback:
    """Book a call back (rendered values); the worker answers with ToolResult: ok with
    ``{"at": "YYYY-MM-DD HH:MM" local, "number": E.164}``, or not ok with why."""

    number: str
    date: str
    time: str
    after_s: float
    entry: str
    variables: dict[str, Any]


@dataclass(frozen=True)
class StartRecording:
    """Record the caller (after the tone) until # or ``max_s``; answer with RecordingDone."""

    max_s: float
    after_mark: str


@dataclass(frozen=True)
class AgentTurn:
    """Ask the LLM for the next reply and speak it as it streams; answer with AgentReply.
    ``messages`` are (role, text) pairs, oldest first: the conversation of this agent step. Roles:
    user, assistant, and for tools ``tool_call`` (JSON {id, name, arguments}) and ``tool`` (JSON
    {id, content}: what the model is shown of the result)."""

    instructions: str
    messages: tuple[tuple[str, str], ...]
    barge_in: bool = True
    tools: tuple[dict[str, Any], ...] = ()  # OpenAI-style function tools it may call


Action = (
    SayAction
    | StartCollect
    | TransferAction
    | HangupAction
    | ToolCall
    | ScheduleCallback
    | StartRecording
    | AgentTurn
)
