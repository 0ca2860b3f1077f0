"""The UA worker's own spans in each call's trace (voicebot/tracing.py): the SIP side of the call.

``ua.call`` from the INVITE's arrival to the call's end, under the call's root span (found from the
call id, like every process's spans), with children for what only the UA sees: ``ua.answer_wait``
(the INVITE waiting for a free call worker before the 200 OK), ``ua.transfer`` (REFER sent -> final
NOTIFY, with its SIP code) and ``ua.no_worker`` (a call worker died: until a new one took the call
over). Spans are made with their recorded times when the call ends; the SDK's batch processor
exports them from its own thread, so the loop that serves calls never waits on a collector.
"""

from __future__ import annotations

from typing import Any

from voicebot import tracing
from voicebot.logs import get_logger
from voicebot.signaling.call import CallLeg

log = get_logger(__name__)


def _ns(wall: float) -> int:
    return int(wall * 1e9)


class UaTracer:
    def __init__(self, endpoint: str, service: str, ua_index: int) -> None:
        self.provider = tracing.provider(endpoint, service)
        self.tracer = self.provider.get_tracer("voicebot.ua")
        self.ua_index = ua_index

    @staticmethod
    def _root(call_id: str) -> Any:
        """The context of the call's root span (made by the call worker; its ids come from the call id)."""
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

        root = SpanContext(
            trace_id=tracing.trace_id(call_id),
            span_id=tracing.root_span_id(call_id),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        return set_span_in_context(NonRecordingSpan(root))

    def leg_ended(self, leg: CallLeg, end_wall: float, reason: str) -> None:
        """The call's UA spans (never raises: tracing is not the call's business)."""
        try:
            self._spans(leg, end_wall, reason)
        except Exception as exc:
            log.warning("tracing.ua_span_failed", call_id=leg.call_id, error=str(exc)[:200])

    def _spans(self, leg: CallLeg, end_wall: float, reason: str) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        attrs: dict[str, Any] = {
            "voicebot.call_id": leg.call_id,
            "sip.call_id": leg.sip_call_id,
            "voicebot.trunk": leg.trunk,
            "voicebot.ua_worker": self.ua_index,
            "voicebot.direction": "outbound" if leg.outbound is not None else "inbound",
            "voicebot.ended_by": leg.ended_by,
            "voicebot.end_reason": reason[:200],
            "voicebot.call_workers": leg.workers,
        }
        start = _ns(leg.invited_wall)
        call = self.tracer.start_span(
            "ua.call",
            context=self._root(leg.call_id),
            start_time=start,
            attributes=attrs,
            kind=SpanKind.SERVER,
        )
        if leg.ended_by == "failure":
            call.set_status(Status(StatusCode.ERROR, reason[:200]))
        ctx = trace.set_span_in_context(call)
        for name, begin, end, extra in leg.marks:
            span = self.tracer.start_span(name, context=ctx, start_time=_ns(begin), attributes=extra)
            if extra.get("sip.status_code", 200) >= 300:
                span.set_status(Status(StatusCode.ERROR, str(extra.get("sip.reason", ""))))
            span.end(end_time=max(_ns(end), _ns(begin)))
        call.end(end_time=max(_ns(end_wall), start))

    def close(self) -> None:
        self.provider.force_flush(tracing.FLUSH_TIMEOUT_MS)
        self.provider.shutdown()
