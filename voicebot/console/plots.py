"""SVG drawings for the console's pages (pure: figures in, markup out; every label escaped)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from voicebot.engine.turns import STAGES

COLOURS = {"p50": "#4c78a8", "p95": "#f58518", "p99": "#e45756"}


def waterfall(turn: Mapping[str, Any], width: int = 520) -> str:
    """One turn's stages on one time scale: each bar starts where the stage before it ended."""
    points = [(s, turn.get(f"{s}_ms")) for s in STAGES]
    known = [float(v) for _, v in points if isinstance(v, int | float)]
    if not known:
        return ""
    label_w, row_h = 130, 20
    scale = (width - label_w - 60) / max(max(known), 1.0)
    parts = []
    start = 0.0
    for i, (stage, value) in enumerate(points):
        y = i * row_h
        parts.append(f'<text x="0" y="{y + 14}">{escape(stage)}</text>')
        if not isinstance(value, int | float):
            parts.append(f'<text x="{label_w}" y="{y + 14}">-</text>')
            continue
        x = label_w + start * scale
        w = max(2.0, (float(value) - start) * scale)
        parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="14" fill="#4c78a8"/>')
        parts.append(f'<text x="{x + w + 4:.1f}" y="{y + 14}">{float(value):.0f} ms</text>')
        start = max(start, float(value))
    height = len(points) * row_h
    return (
        f'<svg class="waterfall" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="turn waterfall">{"".join(parts)}</svg>'
    )


def percentiles(stages_ms: Mapping[str, Mapping[str, Any]], width: int = 640) -> str:
    """P50/P95/P99 of each stage as grouped horizontal bars."""
    rows = [(stage, f) for stage, f in stages_ms.items() if any(f.get(p) is not None for p in COLOURS)]
    if not rows:
        return ""
    top = max(float(f.get(p) or 0) for _, f in rows for p in COLOURS) or 1.0
    label_w, bar_h = 130, 10
    group_h = bar_h * len(COLOURS) + 8
    scale = (width - label_w - 70) / top
    parts = []
    for i, (stage, f) in enumerate(rows):
        y0 = 20 + i * group_h
        parts.append(f'<text x="0" y="{y0 + 18}">{escape(stage)}</text>')
        for j, (p, colour) in enumerate(COLOURS.items()):
            value = f.get(p)
            if value is None:
                continue
            y = y0 + j * bar_h
            w = max(1.0, float(value) * scale)
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 1}" fill="{colour}"/>'
            )
            parts.append(
                f'<text x="{label_w + w + 4:.1f}" y="{y + 9}" font-size="10">{float(value):.0f}</text>'
            )
    legend = "".join(
        f'<rect x="{label_w + k * 60}" y="2" width="10" height="10" fill="{c}"/>'
        f'<text x="{label_w + k * 60 + 14}" y="11" font-size="11">{p}</text>'
        for k, (p, c) in enumerate(COLOURS.items())
    )
    height = 24 + len(rows) * group_h
    return (
        f'<svg class="percentiles" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="milliseconds per stage">{legend}{"".join(parts)}</svg>'
    )


def counts(items: Sequence[tuple[str, int]], width: int = 480) -> str:
    """Horizontal bars of counts (failure classes)."""
    if not items:
        return ""
    top = max(n for _, n in items) or 1
    label_w, row_h = 170, 18
    scale = (width - label_w - 40) / top
    parts = []
    for i, (name, n) in enumerate(items):
        y = i * row_h
        parts.append(f'<text x="0" y="{y + 13}">{escape(name)}</text>')
        w = max(1.0, n * scale)
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="13" fill="#72b7b2"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{n}</text>')
    height = len(items) * row_h
    return (
        f'<svg class="counts" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="calls per class">{"".join(parts)}</svg>'
    )
