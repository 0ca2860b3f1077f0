"""Stage times of each caller turn, and of the greeting (sans-I/O: the worker passes ``now``).

A turn starts when the caller stops speaking (the VAD's end of speech) and ends when the bot's reply
starts going out on the wire. In between: the recogniser's final text, the decision (the dialplan's
step, or the LLM's first token), the TTS's first audio. Each stage is kept as milliseconds after the
end of speech, so "where did the silence go" reads straight off one record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STAGES = ("asr_final", "decision", "tts_first_audio", "reply_out")


@dataclass
class Turn:
    n: int
    speech_end: float
    asr_final: float | None = None
    decision: float | None = None
    decided_by: str = ""
    tts_first_audio: float | None = None
    reply_out: float | None = None
    lead_given: bool = False  # a prompt carries this turn's mark

    def record(self) -> dict[str, Any]:
        """``{"turn": n, "decided_by": ..., "<stage>_ms": ms after speech end or None}``."""
        out: dict[str, Any] = {"turn": self.n, "decided_by": self.decided_by}
        for stage in STAGES:
            t = getattr(self, stage)
            out[f"{stage}_ms"] = None if t is None else round((t - self.speech_end) * 1000)
        return out


class TurnClock:
    """One per call. ``lead_mark()`` names the playout mark put before a turn's first reply audio:
    the UA reports it when that audio's first frame is written, which is the reply's wire time."""

    def __init__(self, answered: float) -> None:
        self.answered = answered
        self.greeting_out: float | None = None
        self._greeting_marked = False
        self.current: Turn | None = None
        self.count = 0

    # -- marks before the bot's audio -----------------------------------------------------------
    def lead_mark(self) -> str | None:
        """The mark to queue before the next prompt's audio, if its wire time is a stage time: the
        call's first prompt (the greeting, ``turn:0``) and a turn's first reply (``turn:N``)."""
        if not self._greeting_marked and not self.count:
            self._greeting_marked = True
            return "turn:0"
        turn = self.current
        if turn is None or turn.decision is None or turn.lead_given:
            return None
        turn.lead_given = True
        return f"turn:{turn.n}"

    def tts_ready(self, now: float) -> None:
        """The reply's first audio is synthesised and queued (the TTS stage ends)."""
        turn = self.current
        if turn is not None and turn.lead_given and turn.tts_first_audio is None:
            turn.tts_first_audio = now

    # -- caller turns -------------------------------------------------------------------------
    def transcribed(self, speech_end: float, now: float) -> None:
        """The recogniser's final text for the speech that ended at ``speech_end``."""
        self.count += 1
        self.current = Turn(self.count, speech_end, asr_final=now)

    def decided(self, now: float, by: str) -> None:
        turn = self.current
        if turn is not None and turn.decision is None:
            turn.decision, turn.decided_by = now, by

    def mark_played(self, mark: str, now: float) -> dict[str, Any] | None:
        """A ``turn:N`` mark went out: the finished record (greeting: ``{"greeting_ms": ...}``)."""
        if mark == "turn:0":
            if self.greeting_out is not None:
                return None
            self.greeting_out = now
            return {"turn": 0, "greeting_ms": round((now - self.answered) * 1000)}
        turn = self.current
        if turn is None or mark != f"turn:{turn.n}":
            return None
        turn.reply_out = now
        self.current = None
        return turn.record()

    def abandon(self) -> dict[str, Any] | None:
        """The turn got no spoken reply (a transfer, a hang-up, barge-in): its record so far."""
        turn, self.current = self.current, None
        return turn.record() if turn is not None else None
