"""`callback`: book a call back. A durable job rings ``number`` at the chosen time and the call
answered there runs this plan from ``entry`` (voicebot/outbound)."""

from __future__ import annotations

from pydantic import Field, field_validator

from voicebot.dialplan.verbs.registry import PLACEHOLDER, Verb, register, variable_names

RESULTS = ("callback_status", "callback_error", "callback_at", "callback_number")
# Set by the call back itself (CallStarted): a kept value of the first call must not stand for them.
CALL_OWN = frozenset({"caller", "called", "call_id", "direction", "today"})


@register("callback")
class Callback(Verb):
    """Book the callback; ``callback_status`` is "ok", "refused" (number, time or setup said no),
    "error" (it could not be booked) or "declined" (the caller said no to ``confirm``)."""

    number: str = Field("{caller}", min_length=1, max_length=64)  # a template: "{callback_number}"
    date: str = Field("", max_length=64)  # YYYY-MM-DD ("" = the next day the time comes)
    time: str = Field("", max_length=64)  # HH:MM local ("" = after_s from now, within calling hours)
    after_s: float = Field(0.0, ge=0, le=90 * 86400)
    entry: str  # the step the callback call starts at
    keep: list[str] = Field(default_factory=list, max_length=20)  # variables carried into that call
    # Read the number and time back and wait for yes / key 1 ("I'll call {callback_number} ...").
    confirm: str | None = Field(None, min_length=1)
    on_error: str | None = None  # refused or not booked (default: handlers.error, else the call ends)
    on_decline: str | None = None

    @field_validator("keep")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        variable_names(v, "kept variable")
        own = sorted(set(v) & CALL_OWN)
        if own:
            raise ValueError(f"{own[0]!r} belongs to the call back itself and cannot be kept")
        return v

    @field_validator("entry")
    @classmethod
    def _entry(cls, v: str) -> str:
        if not v:
            raise ValueError("entry must name the step the callback call starts at")
        return v

    def waits(self) -> bool:
        return self.confirm is not None

    def targets(self) -> list[str]:
        return [t for t in (self.on_error, self.on_decline) if t]

    def entries(self) -> list[str]:
        return [self.entry]

    def sets(self) -> list[str]:
        return list(RESULTS)

    def texts(self) -> list[str]:
        return [self.confirm] if self.confirm else []

    def reads(self) -> set[str]:
        found = super().reads() | set(self.keep)
        for template in (self.number, self.date, self.time):
            found |= set(PLACEHOLDER.findall(template))
        return found
