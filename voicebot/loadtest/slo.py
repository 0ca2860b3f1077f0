"""An SLO file for `voicebot loadtest --slo`: limits a run must meet, else it exits 1 (pure).

answer_rate_min: 1.0        # share of calls answered
outcome_rate_min: 1.0       # share of calls that ended as their script expects
greeting_ms_p95_max: 2000   # answered -> the bot's first audio
turn_gap_ms_p95_max: 2500   # the caller's last key or word -> the bot's next audio
setup_ms_p95_max: 500       # INVITE -> 200 OK
barge_stop_ms_p95_max: 600  # the caller began talking over the bot -> the bot's audio stopped
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voicebot.dialplan.yamlsafe import load
from voicebot.errors import ConfigError


class Slo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer_rate_min: float | None = Field(None, ge=0, le=1)
    outcome_rate_min: float | None = Field(None, ge=0, le=1)
    greeting_ms_p95_max: float | None = Field(None, gt=0)
    turn_gap_ms_p95_max: float | None = Field(None, gt=0)
    setup_ms_p95_max: float | None = Field(None, gt=0)
    barge_stop_ms_p95_max: float | None = Field(None, gt=0)


def read(path: Path) -> Slo:
    try:
        data = load(path.read_bytes(), str(path)).data
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return Slo.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None


def misses(slo: Slo, summary: dict[str, Any]) -> list[str]:
    """What the run missed, one line each; [] when it met every limit."""
    out: list[str] = []
    for name, limit in (("answer_rate", slo.answer_rate_min), ("outcome_rate", slo.outcome_rate_min)):
        if limit is not None and summary[name] < limit:
            out.append(f"{name} {summary[name]:.2%} < {limit:.2%}")
    for name, limit in (
        ("greeting_ms", slo.greeting_ms_p95_max),
        ("turn_gap_ms", slo.turn_gap_ms_p95_max),
        ("setup_ms", slo.setup_ms_p95_max),
        ("barge_stop_ms", slo.barge_stop_ms_p95_max),
    ):
        if limit is None:
            continue
        p95 = summary[name]["p95"]
        if p95 is None:
            out.append(f"{name} p95: nothing measured (limit {limit:.0f} ms)")
        elif p95 > limit:
            out.append(f"{name} p95 {p95:.0f} ms > {limit:.0f} ms")
    return out
