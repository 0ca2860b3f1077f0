"""Percentiles for the benchmarks (nearest-rank, so every figure is a value that was measured)."""

from __future__ import annotations

import math


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]
