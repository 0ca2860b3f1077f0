"""One OpenTelemetry trace per call, across the UA, call-worker and speech processes (optional extra
``voicebot[tracing]``; on when ``tracing.otlp_endpoint`` is set).

Ids are derived from the call id, so every process puts its spans into the same trace without
passing context around: the trace id is the call id (128 bits of hex), the root span's id a hash of
it. The call worker exports the call's spans when the call is over, built from the call's event log
with the times the events were taken at (the root ``call`` from INVITE to the end, ``sip.invite``,
the greeting, each turn with its stages, transfers, tool calls, LLM turns); the speech service
exports a live span per request under the call's root, found from the W3C ``traceparent`` header the
call worker's speech client sends (set in :data:`TRACEPARENT` for the call).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from voicebot.engine.turns import STAGES
from voicebot.logs import get_logger

log = get_logger(__name__)

# The call's W3C traceparent while a call worker serves it (read by the speech client).
TRACEPARENT: contextvars.ContextVar[str] = contextvars.ContextVar("voicebot_traceparent", default="")
FLUSH_TIMEOUT_MS = 3000


def trace_id(call_id: str) -> int:
    try:
        value = int(call_id, 16) if len(call_id) == 32 else 0
    except ValueError:
        value = 0
    return value or int(hashlib.sha256(call_id.encode()).hexdigest()[:32], 16)


def root_span_id(call_id: str) -> int:
    return int(hashlib.sha256(f"root|{call_id}".encode()).hexdigest()[:16], 16) or 1


def traceparent(call_id: str) -> str:
    return f"00-{trace_id(call_id):032x}-{root_span_id(call_id):016x}-01"


def _ns(at: dt.datetime) -> int:
    return int(at.timestamp() * 1e9)


def provider(endpoint: str, service: str, call_id: str | None = None) -> Any:
    """A tracer provider exporting to ``endpoint`` over OTLP/HTTP (protobuf)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class RootIds(RandomIdGenerator):
        """The SDK asks for the root span's ids first: give it the call's."""

        def __init__(self, call_id: str) -> None:
            self.pending = [root_span_id(call_id)]
            self.trace = trace_id(call_id)

        def generate_span_id(self) -> int:
            return self.pending.pop() if self.pending else int(super().generate_span_id())

        def generate_trace_id(self) -> int:
            return self.trace

        def is_trace_id_random(self) -> bool:
            return False

    kwargs: dict[str, Any] = {"resource": Resource.create({"service.name": service})}
    if call_id is not None:
        kwargs["id_generator"] = RootIds(call_id)
    tp = TracerProvider(**kwargs)
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=5)))
    return tp


def _spans_of_turns(events: Sequence[dict[str, Any]]) -> Iterator[tuple[str, float, float, dict[str, Any]]]:
    """(name, start s, end s, attributes) of each caller turn and its stages, from the turn records
    (stages in ms after the caller's speech ended) and the event times."""
    last_transcript: dict[str, Any] | None = None
    for e in events:
        if e["kind"] == "transcript":
            last_transcript = e
            continue
        if e["kind"] != "turn" or "greeting_ms" in e:
            continue
        reply = e.get("reply_out_ms")
        if isinstance(reply, int | float):
            speech_end = e["t"] - reply / 1000  # the record is taken when the reply goes out
        elif last_transcript is not None and isinstance(
            last_transcript.get("end_to_decision_ms"), int | float
        ):
            speech_end = last_transcript["t"] - last_transcript["end_to_decision_ms"] / 1000
        else:
            continue
        stages = [(s, e.get(f"{s}_ms")) for s in STAGES]
        known = [(s, v / 1000) for s, v in stages if isinstance(v, int | float)]
        end = max([v for _, v in known], default=0.0)
        attrs: dict[str, Any] = {
            "voicebot.turn": e.get("turn", 0),
            "voicebot.decided_by": e.get("decided_by", ""),
        }
        if last_transcript is not None:
            attrs["asr.provider"] = last_transcript.get("asr") or "local"
            attrs["asr.audio_s"] = float(last_transcript.get("audio_s") or 0.0)
        yield f"turn {e.get('turn', 0)}", speech_end, speech_end + end, attrs
        start = 0.0
        names = {
            "asr_final": "asr",
            "decision": "decision",
            "tts_first_audio": "tts.first_audio",
            "reply_out": "playout",
        }
        for stage, at in known:
            yield names[stage], speech_end + start, speech_end + max(at, start), {"voicebot.stage": stage}
            start = max(start, at)


def _paired(
    events: Sequence[dict[str, Any]], begin: str, done: str, name: str, then: str = ""
) -> Iterator[tuple[str, float, float, dict[str, Any]]]:
    """Spans from ``begin`` to ``done`` events; the attributes of both, and of a ``then`` event that
    follows ``done`` at once (an LLM reply's usage)."""
    opened: dict[str, Any] | None = None
    for i, e in enumerate(events):
        if e["kind"] == begin:
            opened = e
        elif e["kind"] == done and opened is not None:
            after = events[i + 1] if then and i + 1 < len(events) and events[i + 1]["kind"] == then else {}
            merged = {**opened, **e, **after}
            attrs = {k: v for k, v in merged.items() if k not in ("t", "kind") and _plain(v)}
            yield name, opened["t"], e["t"], {f"voicebot.{k}": v for k, v in attrs.items()}
            opened = None


def _plain(value: Any) -> bool:
    return isinstance(value, str | bool | int | float)


def export_call(
    endpoint: str,
    service: str,
    record: Any,
    events: Sequence[dict[str, Any]],
    events_at: dt.datetime,
    invite_ms: float = 0.0,
) -> int:
    """Export the call's spans (blocking, bounded); returns how many. ``events`` are the worker's
    (``t``: seconds after ``events_at``); ``record`` the call's record (ids, labels)."""
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    tp = provider(endpoint, service, record.call_id)
    tracer = tp.get_tracer("voicebot.call")

    def at(seconds: float) -> int:
        return _ns(events_at + dt.timedelta(seconds=seconds))

    answered = _ns(record.started_at)
    start = answered - int(invite_ms * 1e6)
    end = max(_ns(record.ended_at), answered)
    attrs = {
        "voicebot.call_id": record.call_id,
        "sip.call_id": record.sip_call_id,
        "voicebot.trunk": record.trunk,
        "voicebot.dialplan": record.dialplan,
        "voicebot.dialplan_version": record.dialplan_version,
        "voicebot.node": record.node,
        "voicebot.outcome": record.outcome,
        "voicebot.failure_class": record.failure_class,
        "voicebot.disposition": record.disposition,
    }
    root = tracer.start_span("call", start_time=start, attributes=attrs, kind=trace.SpanKind.SERVER)
    if record.outcome == "failed":
        root.set_status(Status(StatusCode.ERROR, record.failure_class))
    ctx = trace.set_span_in_context(root)
    count = 1
    spans: list[tuple[str, int, int, dict[str, Any]]] = []
    if invite_ms:
        spans.append(("sip.invite", start, answered, {}))
    greeting = next((e for e in events if e["kind"] == "turn" and "greeting_ms" in e), None)
    if greeting is not None and isinstance(greeting.get("greeting_ms"), int | float):
        spans.append(("greeting", answered, answered + int(greeting["greeting_ms"] * 1e6), {}))
    for name, s, e, a in [
        *_paired(events, "transfer_request", "transfer_result", "transfer"),
        *_paired(events, "tool_call", "tool_result", "tool"),
        *_paired(events, "agent_turn", "agent_reply", "llm", then="llm_usage"),
    ]:
        spans.append((name, at(s), at(e), a))
    turn_ctx = ctx
    for name, s, e, a in _spans_of_turns(events):
        if name.startswith("turn "):
            turn = tracer.start_span(name, context=ctx, start_time=at(s), attributes=a)
            turn.end(end_time=at(e))
            turn_ctx = trace.set_span_in_context(turn)
            count += 1
        else:
            child = tracer.start_span(name, context=turn_ctx, start_time=at(s), attributes=a)
            child.end(end_time=at(e))
            count += 1
    for name, s_ns, e_ns, a in spans:
        span = tracer.start_span(name, context=ctx, start_time=s_ns, attributes=a)
        if name == "transfer" and a.get("voicebot.ok") is False:
            span.set_status(Status(StatusCode.ERROR, str(a.get("voicebot.reason", ""))))
        span.end(end_time=max(e_ns, s_ns))
        count += 1
    root.end(end_time=end)
    ok = tp.force_flush(FLUSH_TIMEOUT_MS)
    tp.shutdown()
    if not ok:
        log.warning("tracing.export_unfinished", endpoint=endpoint, spans=count)
    return count


@contextmanager
def server_span(tracer: Any, name: str, headers: Any, **attributes: Any) -> Iterator[Any]:
    """A span of the speech service under the caller's span (from its ``traceparent`` header)."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    ctx = TraceContextTextMapPropagator().extract({"traceparent": headers.get("traceparent", "")})
    with tracer.start_as_current_span(name, context=ctx, attributes=attributes) as span:
        yield span
