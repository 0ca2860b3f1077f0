"""One scripted call's result, and a run's summary: rates and percentiles (pure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from voicebot.reports.summary import percentile


@dataclass
class CallResult:
    script: str
    answered: bool = False
    sip_code: int = 0  # the final answer to our INVITE (200, 486, 503...)
    setup_ms: float | None = None  # INVITE sent -> 200 OK
    greeting_ms: float | None = None  # answered -> the bot's first audio
    turn_gaps_ms: list[float] = field(default_factory=list)  # our last key / word -> the bot's next audio
    barge_ins: int = 0  # times the caller spoke over the bot
    barge_stops_ms: list[float] = field(default_factory=list)  # the caller began over the bot -> it stopped
    barge_missed: int = 0  # ... and it was still talking 5 s later
    outcome: str = ""  # transfer, hangup (by the bot), timeout (we hung up), failed (never answered)
    target: str = ""  # the transfer's Refer-To
    expected: str = ""
    ok: bool = False  # answered and ended as the script expects
    why: str = ""  # what went wrong, when not ok
    seconds: float = 0.0
    burst: bool = False  # one of a burst's callers (--burst), started together on top of the level

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pcts(values: list[float]) -> dict[str, float | None]:
    return {f"p{p}": percentile(values, p) for p in (50, 95, 99)}


def summarise(calls: list[CallResult], wall_s: float, concurrency: int) -> dict[str, Any]:
    answered = [c for c in calls if c.answered]
    greetings = [c.greeting_ms for c in answered if c.greeting_ms is not None]
    gaps = [g for c in answered for g in c.turn_gaps_ms]
    setups = [c.setup_ms for c in answered if c.setup_ms is not None]
    stops = [s for c in answered for s in c.barge_stops_ms]
    n = len(calls)
    return {
        "calls": n,
        "concurrency": concurrency,
        "wall_s": round(wall_s, 1),
        "answered": len(answered),
        "answer_rate": round(len(answered) / n, 4) if n else 0.0,
        "as_expected": sum(c.ok for c in calls),
        "outcome_rate": round(sum(c.ok for c in calls) / n, 4) if n else 0.0,
        "outcomes": {o: sum(c.outcome == o for c in calls) for o in sorted({c.outcome for c in calls})},
        "setup_ms": _pcts(setups),
        "greeting_ms": _pcts(greetings),
        "turn_gap_ms": _pcts(gaps),
        "turns": len(gaps),
        "barge_stop_ms": _pcts(stops),
        "barge_ins": sum(c.barge_ins for c in answered),
        "barge_missed": sum(c.barge_missed for c in answered),
        "burst": {
            "calls": sum(c.burst for c in calls),
            "answered": sum(c.burst and c.answered for c in calls),
            "as_expected": sum(c.burst and c.ok for c in calls),
        },
    }


def table(summary: dict[str, Any]) -> str:
    """The summary as a few lines for a terminal."""

    def ms(d: dict[str, float | None]) -> str:
        return "  ".join(f"{k} {'-' if v is None else f'{v:.0f}'}" for k, v in d.items())

    return "\n".join(
        [
            f"calls {summary['calls']} at concurrency {summary['concurrency']} in {summary['wall_s']} s",
            f"answered {summary['answered']} ({summary['answer_rate']:.0%}), as expected "
            f"{summary['as_expected']} ({summary['outcome_rate']:.0%}); outcomes {summary['outcomes']}",
            f"setup ms      {ms(summary['setup_ms'])}",
            f"greeting ms   {ms(summary['greeting_ms'])}",
            f"turn gap ms   {ms(summary['turn_gap_ms'])}  ({summary['turns']} turns)",
        ]
        + (
            [
                f"barge-in stop ms {ms(summary['barge_stop_ms'])}  ({summary['barge_ins']} barge-ins, "
                f"{summary['barge_missed']} not stopped within 5 s)"
            ]
            if summary.get("barge_ins")
            else []
        )
        + (
            [
                f"burst         {summary['burst']['calls']} calls at once: answered "
                f"{summary['burst']['answered']}, as expected {summary['burst']['as_expected']}"
            ]
            if summary.get("burst", {}).get("calls")
            else []
        )
    )
