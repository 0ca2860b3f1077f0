"""The messages a UA worker and a per-call worker exchange.

One datagram per message on a Unix SOCK_SEQPACKET socket (boundaries kept by the kernel, so no
framing code and no partial reads). The first byte says what follows:

* ``A`` + raw PCM (signed 16-bit little endian, mono, 20 ms at the call's sample rate): audio;
* ``C`` + UTF-8 JSON of one of the control models below.

Never pickles: a per-call worker is less trusted than the UA worker (it runs caller-driven logic),
so everything crossing is validated.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from voicebot.errors import ProtocolError

AUDIO = b"A"
CONTROL = b"C"
MAX_MESSAGE = 64 * 1024
CHECKPOINT_MAX = 48 * 1024  # a call's checkpoint (JSON) must fit one message with room to spare
HEADER_VALUE_MAX = 200  # transfer context header values (the UA also strips control characters)
REASON_MAX = 200  # a transfer's reason: context for the agent, rendered from the plan


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- UA worker -> per-call worker -------------------------------------------------------------
class CallStart(_Msg):
    """A call was answered and handed to this worker."""

    type: Literal["call_start"] = "call_start"
    call_id: str
    sip_call_id: str
    caller: str
    callee: str
    trunk: str
    dialplan: str
    sample_rate: int = 8000
    ua_worker: int = 0
    node: str = Field("", max_length=64)
    # Set when the call's previous worker died: its last checkpoint (JSON) and how many workers died
    # since that checkpoint was taken. The new worker goes on from there.
    resume: str | None = Field(None, max_length=CHECKPOINT_MAX)
    deaths: int = Field(0, ge=0)
    answered_at: float = 0.0  # wall clock (epoch s) of the answer: a resumed call keeps its start
    invite_ms: float = Field(0.0, ge=0)  # INVITE to answer (the trace's sip.invite span)
    worker_no: int = Field(1, ge=1)  # this call's 1st, 2nd, ... worker
    # A call the bot placed (voicebot/outbound): it starts at the plan's ``entry`` step with
    # ``variables`` (those the callback carried over); ``caller`` is then the number dialled.
    direction: Literal["inbound", "outbound"] = "inbound"
    entry: str = Field("", max_length=64)
    variables: dict[str, str | int | float | bool] = Field(default_factory=dict)
    dial_id: str = Field("", max_length=64)


class DtmfReceived(_Msg):
    type: Literal["dtmf"] = "dtmf"
    digit: str = Field(pattern=r"^[0-9*#A-Da-d]$")
    method: Literal["rfc4733", "sip_info", "inband"] = "rfc4733"
    duration_ms: int = 0


class PlayedMark(_Msg):
    """All audio queued before ``Mark(mark)`` has gone out to the caller."""

    type: Literal["played"] = "played"
    mark: str


class DroppedMark(_Msg):
    """``Mark(mark)`` was flushed with the audio before it (barge-in): it never played."""

    type: Literal["dropped"] = "dropped"
    mark: str


class TransferResult(_Msg):
    type: Literal["transfer_result"] = "transfer_result"
    queue: str
    ok: bool
    status: int
    reason: str = ""


class CallEnded(_Msg):
    type: Literal["call_ended"] = "call_ended"
    reason: str


# --- per-call worker -> UA worker -------------------------------------------------------------
class WorkerReady(_Msg):
    type: Literal["ready"] = "ready"
    pid: int


class Mark(_Msg):
    """Insert a marker in the playout queue; the UA answers PlayedMark when it is reached."""

    type: Literal["mark"] = "mark"
    mark: str


class Flush(_Msg):
    """Drop all queued bot audio now (barge-in)."""

    type: Literal["flush"] = "flush"


class TransferRequest(_Msg):
    """Blind transfer to a queue NAME; the UA maps it to a URI from the admin allowlist."""

    type: Literal["transfer"] = "transfer"
    queue: str = Field(min_length=1, max_length=64)
    reason: str = Field("", max_length=200)
    # context for the agent: name -> value, sent as X-Voicebot-<name> (the UA cleans the values)
    headers: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,40}$")], str] = Field(
        default_factory=dict, max_length=16
    )

    @field_validator("reason", mode="before")
    @classmethod
    def _short_reason(cls, v: object) -> object:
        return v[:REASON_MAX] if isinstance(v, str) else v

    @field_validator("headers", mode="before")
    @classmethod
    def _short_values(cls, v: object) -> object:
        # Values are rendered from dialplan variables (tool results, caller input): bounded here so a
        # long one can never make the message too big for the socket.
        return (
            {k: x[:HEADER_VALUE_MAX] if isinstance(x, str) else x for k, x in v.items()}
            if isinstance(v, dict)
            else v
        )


class Checkpoint(_Msg):
    """The call's state after a step (JSON): the UA keeps the newest one to resume the call with a
    new worker if this one dies."""

    type: Literal["checkpoint"] = "checkpoint"
    state: str = Field(max_length=CHECKPOINT_MAX)
    # Grows when the call moves on (not when a new worker replays the step it resumed at): the UA
    # counts worker deaths since the last progress, to give up on a step that kills every worker.
    progress: int = Field(0, ge=0)


class Heartbeat(_Msg):
    """The worker's event loop is alive (every 0.5 s); silence for 2 s and the UA replaces it."""

    type: Literal["heartbeat"] = "heartbeat"


class HangupRequest(_Msg):
    type: Literal["hangup"] = "hangup"
    reason: str = Field("normal", max_length=200)


class TurnMetrics(_Msg):
    """A finished turn's stage times (ms after the caller's speech ended), or the greeting's."""

    type: Literal["turn_metrics"] = "turn_metrics"
    turn: int = Field(ge=0)
    decided_by: str = Field("", max_length=32)
    greeting_ms: int | None = None
    asr_final_ms: int | None = None
    decision_ms: int | None = None
    tts_first_audio_ms: int | None = None
    reply_out_ms: int | None = None


class StageFailed(_Msg):
    """A stage of the call's work failed (the call went on: reprompt, fallback, error path)."""

    type: Literal["stage_failed"] = "stage_failed"
    stage: Literal["asr", "tts", "llm", "tool"]


Control = Annotated[
    CallStart
    | DtmfReceived
    | PlayedMark
    | DroppedMark
    | TransferResult
    | CallEnded
    | WorkerReady
    | Mark
    | Flush
    | TransferRequest
    | HangupRequest
    | Checkpoint
    | Heartbeat
    | TurnMetrics
    | StageFailed,
    Field(discriminator="type"),
]
_control_adapter: TypeAdapter[Control] = TypeAdapter(Control)


def encode_control(msg: _Msg) -> bytes:
    return CONTROL + msg.model_dump_json().encode()


def encode_audio(pcm: bytes) -> bytes:
    return AUDIO + pcm


def decode(data: bytes) -> Control | bytes:
    """Return a control model or the PCM of an audio message; raise ProtocolError on bad input."""
    if not data:
        raise ProtocolError("empty IPC message (peer closed?)")
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"IPC message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    kind, body = data[:1], data[1:]
    if kind == AUDIO:
        if len(body) % 2:
            raise ProtocolError(f"audio payload of odd length {len(body)}")
        return body
    if kind == CONTROL:
        try:
            return _control_adapter.validate_json(body)
        except ValidationError as exc:
            raise ProtocolError(f"invalid control message: {exc.errors()[0]['msg']}") from None
    raise ProtocolError(f"unknown IPC message kind {kind!r}")
