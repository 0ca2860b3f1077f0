"""`voicebot calls list` and `voicebot calls show` as text (pure: rows in, lines out).

A call's page: its record, why it was classified as it was, its events in order (transcripts only
when asked for, and never what was redacted when it was kept), and a waterfall per turn: where the
silence after the caller's last word went (recognition, decision, synthesis, the reply on the wire).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from voicebot.engine.turns import STAGES
from voicebot.records.classify import classify
from voicebot.records.record import PII_FIELDS

WIDTH = 48  # characters of the waterfall's longest bar
HIDDEN = "<hidden: --transcript shows it>"
TEXT_FIELDS = PII_FIELDS  # what --transcript controls: what the record redacts


def when(at: dt.datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def seconds(call: Any) -> str:
    return f"{seconds_of(call):.1f}" if call.ended_at is not None and call.started_at is not None else "-"


def seconds_of(call: Any) -> float:
    """How long the call lasted (0 while it has no end)."""
    if call.started_at is None or call.ended_at is None:
        return 0.0
    return float((call.ended_at - call.started_at).total_seconds())


def render_list(calls: Sequence[Any]) -> str:
    head = (
        f"{'id':<12} {'started':<19} {'s':>6}  {'dialplan':<18} {'version':<14} {'outcome':<10} "
        f"{'class':<19} node"
    )
    lines = [head]
    for c in calls:
        name = (c.dialplan or "").rsplit("/", 1)[-1][:18]
        lines.append(
            f"{c.id[:12]:<12} {when(c.started_at):<19} {seconds(c):>6}  {name:<18} "
            f"{(c.dialplan_version or '-')[:14]:<14} {(c.outcome or '-'):<10} {(c.failure_class or '-'):<19} "
            f"{c.node or '-'}"
        )
    lines.append(f"{len(calls)} calls")
    return "\n".join(lines)


def _event_line(kind: str, data: dict[str, Any], transcript: bool) -> str:
    shown = {k: (v if transcript or k not in TEXT_FIELDS else HIDDEN) for k, v in data.items()}
    return f"{kind:<18} " + " ".join(f"{k}={v}" for k, v in shown.items())


def waterfall(turn: dict[str, Any]) -> list[str]:
    """One turn's stages as bars on one scale: each stage ends where its bar ends."""
    if "greeting_ms" in turn:
        ms = turn.get("greeting_ms")
        return [f"greeting: first audio {ms} ms after the answer"] if ms is not None else []
    points = [(s, turn.get(f"{s}_ms")) for s in STAGES]
    known = [v for _, v in points if isinstance(v, int | float)]
    if not known:
        return [f"turn {turn.get('turn')}: no reply timed"]
    scale = WIDTH / max(max(known), 1)
    lines = [
        f"turn {turn.get('turn')} (decided by {turn.get('decided_by') or '-'}), ms after the caller stopped:"
    ]
    start = 0.0
    for stage, value in points:
        if not isinstance(value, int | float):
            lines.append(f"  {stage:<16} {'':<{WIDTH}}      -")
            continue
        lead, bar = round(start * scale), max(1, round((value - start) * scale))
        lines.append(f"  {stage:<16} {' ' * lead}{'#' * bar:<{WIDTH - lead}} {value:>6.0f}")
        start = max(start, float(value))
    return lines


def render_call(call: Any, events: Sequence[Any], transcript: bool = False) -> str:
    verdict = classify([{"kind": e.kind, **(e.data or {})} for e in events])
    lines = [
        f"call {call.id}",
        f"  started {when(call.started_at)}, {seconds(call)} s, node {call.node or '-'}, "
        f"UA worker {call.ua_worker}, trunk {call.trunk or '-'}",
        f"  caller {call.caller or '-'} -> {call.callee or '-'}",
        f"  dialplan {call.dialplan or '-'} version {call.dialplan_version or '-'}",
        f"  disposition {call.disposition or '-'}"
        + (f" to {call.transfer_queue}" if call.transfer_queue else "")
        + f", ended: {call.end_reason or '-'}",
        f"  outcome {call.outcome or verdict.outcome}, class {call.failure_class or verdict.failure_class}"
        + (f": {verdict.why}" if verdict.why else ""),
        "",
        "events (s after the start):",
    ]
    t0 = call.started_at
    for e in events:
        offset = (e.at - t0).total_seconds() if (e.at and t0) else 0.0
        lines.append(f"  {offset:7.2f}  {_event_line(e.kind, dict(e.data or {}), transcript)}")
    turns = [e.data for e in events if e.kind == "turn"]
    if turns:
        lines += ["", "turns:"]
        for turn in turns:
            lines += ["  " + line for line in waterfall(turn)]
    return "\n".join(lines)
