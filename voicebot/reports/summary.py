"""What `voicebot report` says about a set of calls (pure: rows in, figures out).

Per dialplan and version (a canary and the stable version side by side): calls, completion and
escalation rates, calls per failure class, and P50/P95/P99 of each turn stage in milliseconds after
the caller stopped speaking (the ``turn`` records of voicebot/engine/turns.py), and the greeting.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from voicebot.engine.turns import STAGES

PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class CallRow:
    """One call as the report needs it: its labels and its turn records."""

    dialplan: str
    version: str
    outcome: str
    failure_class: str
    turns: Sequence[dict[str, Any]] = ()
    cost: dict[str, float] | None = None  # voicebot/reports/costs.py


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (the value a share ``p`` % of the sample is at or below)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Group:
    dialplan: str
    version: str
    calls: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)
    stages: dict[str, list[float]] = field(default_factory=dict)
    cost_parts: dict[str, float] = field(default_factory=dict)
    cost_by_outcome: dict[str, float] = field(default_factory=dict)

    def add(self, row: CallRow) -> None:
        self.calls += 1
        if row.cost:
            for part, price in row.cost.items():
                if part != "total":
                    self.cost_parts[part] = self.cost_parts.get(part, 0.0) + price
            how = row.outcome or "unknown"
            self.cost_by_outcome[how] = self.cost_by_outcome.get(how, 0.0) + row.cost.get("total", 0.0)
        self.outcomes[row.outcome or "unknown"] += 1
        self.classes[row.failure_class or "unknown"] += 1
        for turn in row.turns:
            keys = ("greeting_ms",) if "greeting_ms" in turn else tuple(f"{s}_ms" for s in STAGES)
            for key in keys:
                value = turn.get(key)
                if isinstance(value, int | float):
                    self.stages.setdefault(key.removesuffix("_ms"), []).append(float(value))

    def figures(self) -> dict[str, Any]:
        done = self.classes.get("completed", 0)
        total = sum(self.cost_parts.values())
        return {
            "dialplan": self.dialplan,
            "version": self.version,
            "calls": self.calls,
            # the bot did what the caller came for (ended by the plan or handed over as planned)
            "completion": round(done / self.calls, 4) if self.calls else None,
            "escalation": round(self.outcomes.get("escalated", 0) / self.calls, 4) if self.calls else None,
            "outcomes": dict(sorted(self.outcomes.items())),
            "failure_classes": dict(sorted(self.classes.items(), key=lambda kv: (-kv[1], kv[0]))),
            "cost": {
                "total": round(total, 4),
                "per_call": round(total / self.calls, 4) if self.calls else None,
                # what one call the bot saw through costs, the failed ones' cost included
                "per_completed": round(total / done, 4) if done else None,
                "parts": {k: round(v, 4) for k, v in sorted(self.cost_parts.items())},
                "by_outcome": {k: round(v, 4) for k, v in sorted(self.cost_by_outcome.items())},
            },
            "stages_ms": {
                stage: {f"p{p}": percentile(values, p) for p in PERCENTILES} | {"n": len(values)}
                for stage, values in sorted(self.stages.items(), key=lambda kv: _stage_order(kv[0]))
            },
        }


def _stage_order(stage: str) -> int:
    order = ("greeting", *STAGES)
    return order.index(stage) if stage in order else len(order)


def summarise(rows: Iterable[CallRow]) -> dict[str, Any]:
    """All calls together, then each dialplan version."""
    everything = Group("*", "*")
    groups: dict[tuple[str, str], Group] = {}
    for row in rows:
        everything.add(row)
        key = (row.dialplan, row.version)
        groups.setdefault(key, Group(*key)).add(row)
    return {
        "total": everything.figures(),
        "by_version": [groups[k].figures() for k in sorted(groups)],
    }


def render(report: dict[str, Any], since: str, currency: str = "") -> str:
    """The report as text for a terminal."""
    lines = [f"calls since {since}"]
    for part in [report["total"], *report["by_version"]]:
        if part["dialplan"] == "*":
            title = "all calls"
        else:
            title = f"{part['dialplan']} version {part['version'] or '?'}"
        lines.append("")
        lines.append(f"{title}: {part['calls']} calls")
        if not part["calls"]:
            continue
        lines.append(
            f"  completion {part['completion']:.0%}   escalation {part['escalation']:.0%}   "
            + "   ".join(f"{k} {v}" for k, v in part["outcomes"].items())
        )
        lines.append(
            "  failure classes: " + ", ".join(f"{k} {v}" for k, v in part["failure_classes"].items())
        )
        cost = part["cost"]
        if cost["total"]:
            per_done = "-" if cost["per_completed"] is None else f"{cost['per_completed']:.4f}"
            parts = ", ".join(f"{k} {v:.4f}" for k, v in cost["parts"].items() if v)
            unit = f" {currency}" if currency else ""
            lines.append(
                f"  cost {cost['total']:.4f}{unit}: {cost['per_call']:.4f} per call, "
                f"{per_done} per completed outcome ({parts})"
            )
        if part["stages_ms"]:
            lines.append(
                f"  {'stage, ms (turns: after speech end)':<36}{'p50':>8}{'p95':>8}{'p99':>8}{'n':>6}"
            )
            for stage, f in part["stages_ms"].items():
                cells = "".join(f"{_ms(f[f'p{p}']):>8}" for p in PERCENTILES)
                lines.append(f"  {stage:<36}{cells}{f['n']:>6}")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
