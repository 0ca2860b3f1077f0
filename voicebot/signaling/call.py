"""One SIP call in a UA worker: the pjsua2 ``Call`` subclass and its Python-side state.

pjsua2 callbacks only forward to :class:`CallLeg`, which owns the call's worker socket, its audio
port, transfer state and timers. pjsua2 objects are dropped on the main loop after DISCONNECTED,
never inside a callback and never after libDestroy (both crash 2.15.1).
"""

from __future__ import annotations

import re
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pjsua2 as pj
import structlog

from voicebot.ipc import proto
from voicebot.logs import get_logger
from voicebot.outbound.spool import Dial
from voicebot.ua.pool import CallWorkerProc
from voicebot.ua.port import CallAudioPort

log = get_logger(__name__)
TRANSFER_TIMEOUT_S = 30.0

_DTMF_METHODS = {pj.PJSUA_DTMF_METHOD_RFC2833: "rfc4733", pj.PJSUA_DTMF_METHOD_SIP_INFO: "sip_info"}


# Who or what ended a call: the label of voicebot_calls_total{ended_by}.
EndCause = Literal["caller", "transfer", "bot", "rtp_timeout", "shutdown", "failure"]


@dataclass
class CallLeg:
    """Python-side state of one call (main thread only)."""

    call_id: str
    sip_call_id: str
    caller: str
    callee: str
    trunk: str
    dialplan: str
    invited_at: float
    invited_wall: float = field(default_factory=time.time)  # the same moment on the wall clock
    pj_call: VoiceCall | None = None
    worker: CallWorkerProc | None = None
    port: CallAudioPort | None = None
    answered_at: float | None = None
    answered_wall: float = 0.0  # the same moment on the wall clock (call records)
    answer_deadline: float = 0.0
    media_connected: bool = False
    transfer_queue: str | None = None
    transfer_deadline: float = 0.0
    last_rx_packets: int = -1
    last_rx_change: float = field(default_factory=time.monotonic)
    ended: bool = False
    end_reason: str = ""  # why our side ended the call, for people (logs, the worker)
    ended_by: EndCause = "caller"  # the same, as a metric label; "caller" until our side ends it
    # The call outlives its worker: the newest checkpoint the worker sent, how many workers died since
    # it was taken, when the worker was last heard from, and (between workers) until when a new one
    # may take to become free.
    checkpoint: str | None = None
    deaths: int = 0
    progress: int = 0  # of the newest checkpoint
    workers: int = 0  # call workers this call has had
    last_heard: float = field(default_factory=time.monotonic)
    replace_deadline: float | None = None
    log: Any = None
    outbound: Dial | None = None  # a call the bot placed: what was asked for
    reserved: CallWorkerProc | None = None  # its call worker, bound when the callee answers
    # What the UA worker saw, for its spans (voicebot/ua/spans.py): (name, start, end, attributes)
    # on the wall clock; and when an open span began (the transfer, a call without a worker)
    marks: list[tuple[str, float, float, dict[str, Any]]] = field(default_factory=list)
    transfer_wall: float = 0.0
    worker_lost_wall: float = 0.0

    def __post_init__(self) -> None:
        self.log = log.bind(call_id=self.call_id, sip_call_id=self.sip_call_id, trunk=self.trunk)

    def ending(self, cause: EndCause, reason: str) -> None:
        """Our side is ending the call (the SIP hang-up follows)."""
        self.ended_by, self.end_reason = cause, reason

    def send(self, msg: proto._Msg) -> None:
        """Send a control message to the call's worker; a dead worker is noticed by the main loop."""
        if self.worker is None or self.worker.closed:
            return
        try:
            self.worker.sock.send(proto.encode_control(msg))
        except OSError as exc:
            self.log.warning("ipc.send_failed", error=str(exc))

    def rx_packets(self) -> int:
        if self.pj_call is None or not self.media_connected:
            return -1
        try:
            return int(self.pj_call.getStreamStat(0).rtcp.rxStat.pkt)
        except pj.Error:
            return -1


def new_call_id() -> str:
    return uuid.uuid4().hex


HEADER_VALUE_MAX = proto.HEADER_VALUE_MAX
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def header_value(text: str) -> str:
    """A value safe to put in a SIP header: no control characters (CR/LF would inject headers at
    the receiving side once the Refer-To is unescaped), bounded length."""
    return _CONTROL.sub(" ", text).strip()[:HEADER_VALUE_MAX]


def transfer_target(uri: str, call_id: str, reason: str, context: dict[str, str] | None = None) -> str:
    """Refer-To with context headers embedded, so the transferee's new INVITE carries them:
    X-Voicebot-Call-ID, X-Voicebot-Reason and X-Voicebot-<Name> for each ``context`` entry."""
    pairs = {"X-Voicebot-Call-ID": call_id, "X-Voicebot-Reason": header_value(reason)}
    for name, value in (context or {}).items():
        key = f"X-Voicebot-{name}"
        if key not in pairs:  # the bot's own headers cannot be overridden
            pairs[key] = header_value(value)
    headers = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
    sep = "&" if "?" in uri else "?"
    return f"<{uri}{sep}{headers}>"


def sip_headers(pairs: dict[str, str]) -> Any:
    vec = pj.SipHeaderVector()
    for name, value in pairs.items():
        h = pj.SipHeader()
        h.hName = name
        h.hValue = value
        vec.append(h)
    return vec


class VoiceCall(pj.Call):  # type: ignore[misc]
    """pjsua2 call whose callbacks forward to the UA worker."""

    def __init__(self, account: pj.Account, call_id: int, on_event: Callable[[VoiceCall, str, Any], None]):
        super().__init__(account, call_id)
        self.leg: CallLeg | None = None
        self._on_event = on_event

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        self._on_event(self, "state", info)

    def onCallMediaState(self, prm: Any) -> None:
        self._on_event(self, "media", None)

    def onDtmfDigit(self, prm: Any) -> None:
        method = _DTMF_METHODS.get(prm.method, "rfc4733")
        self._on_event(self, "dtmf", (str(prm.digit), method, int(prm.duration)))

    def onCallTransferStatus(self, prm: Any) -> None:
        self._on_event(self, "xfer", (int(prm.statusCode), str(prm.reason), bool(prm.finalNotify)))
        if prm.statusCode >= 200:
            prm.cont = False

    def onCallTransferRequest(self, prm: Any) -> None:
        # Callers may not redirect the bot anywhere: transfers go only to admin-configured queues.
        prm.statusCode = 603
        structlog.get_logger(__name__).warning("sip.refer_refused", dest="***")


def answer(call: VoiceCall, code: int, reason: str = "", headers: dict[str, str] | None = None) -> None:
    op = pj.CallOpParam(True)
    op.statusCode = code
    if reason:
        op.reason = reason
    if headers:
        op.txOption.headers = sip_headers(headers)
    call.answer(op)


def hangup(call: VoiceCall, code: int = 0, reason: str = "") -> None:
    op = pj.CallOpParam(True)
    if code:
        op.statusCode = code
    if reason:
        op.reason = reason
    try:
        call.hangup(op)
    except pj.Error as exc:
        log.debug("sip.hangup_failed", error=exc.info())
