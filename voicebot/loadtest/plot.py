"""Latency percentiles against concurrency, drawn as a small SVG (pure; no plotting library):
where the lines bend upwards is the knee, the load past which callers wait longer."""

from __future__ import annotations

from html import escape
from typing import Any

W, H, PAD = 640, 360, 56
SERIES = (  # (summary key, percentile, colour, dashed)
    ("greeting_ms", "p50", "#1f77b4", False),
    ("greeting_ms", "p95", "#1f77b4", True),
    ("turn_gap_ms", "p50", "#d62728", False),
    ("turn_gap_ms", "p95", "#d62728", True),
)


def svg(steps: list[dict[str, Any]], title: str) -> str:
    """``steps``: run summaries (results.summarise) at rising concurrency."""
    xs = [int(s["concurrency"]) for s in steps]
    values = [float(s[k][p]) for s in steps for k, p, _, _ in SERIES if s[k][p] is not None]
    x_max, y_max = max(xs or [1]), max(values or [1.0]) * 1.1
    x_min = min(xs or [0])

    def px(x: float) -> float:
        span = (x_max - x_min) or 1
        return PAD + (x - x_min) / span * (W - 2 * PAD)

    def py(y: float) -> float:
        return H - PAD - y / y_max * (H - 2 * PAD)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="black"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="black"/>',
        f'<text x="{W / 2}" y="{H - 16}" text-anchor="middle">concurrent calls</text>',
        f'<text x="14" y="{H / 2}" transform="rotate(-90 14 {H / 2})" text-anchor="middle">ms</text>',
    ]
    for x in xs:
        out.append(f'<text x="{px(x):.1f}" y="{H - PAD + 16}" text-anchor="middle">{x}</text>')
    for i in range(5):
        y = y_max * i / 4
        out.append(f'<text x="{PAD - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.0f}</text>')
        out.append(f'<line x1="{PAD}" y1="{py(y):.1f}" x2="{W - PAD}" y2="{py(y):.1f}" stroke="#ddd"/>')
    for n, (key, pct, colour, dashed) in enumerate(SERIES):
        points = [(s["concurrency"], s[key][pct]) for s in steps if s[key][pct] is not None]
        if not points:
            continue
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for x, y in points:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        ly = PAD + 14 * n
        out.append(
            f'<line x1="{W - PAD - 150}" y1="{ly}" x2="{W - PAD - 120}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>'
        )
        out.append(
            f'<text x="{W - PAD - 114}" y="{ly + 4}">{key.removesuffix("_ms").replace("_", " ")} {pct}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
