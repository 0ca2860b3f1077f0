"""`transfer`: hand the caller to a human queue, with context for the person who answers."""

from __future__ import annotations

from pydantic import Field, field_validator

from voicebot.dialplan.verbs.registry import PLACEHOLDER, Verb, register

RESULTS = ("transfer_status", "transfer_reason")  # "failed" + why, for `on_failure` steps


@register("transfer")
class Transfer(Verb):
    """Transfer to queue NAME (the admin configuration maps it to a SIP URI, never the dialplan)."""

    ends_call = True
    falls_through = False
    shorthand = "queue"
    queue: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    announce: str | None = None
    reason: str = ""  # may use {var}: goes to the agent with the call (X-Voicebot-Reason)
    # More context for the agent's desktop: header suffix -> text with {var} (X-Voicebot-<Name>)
    context: dict[str, str] = Field(default_factory=dict, max_length=16)
    on_failure: str | None = None

    @field_validator("context")
    @classmethod
    def _header_names(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not key.replace("-", "").isalnum() or len(key) > 40:
                raise ValueError(f"context name {key!r}: letters, digits and '-' only (it becomes a header)")
        return v

    def targets(self) -> list[str]:
        return [self.on_failure] if self.on_failure else []

    def queues(self) -> list[str]:
        return [self.queue]

    def sets(self) -> list[str]:
        return list(RESULTS)

    def texts(self) -> list[str]:
        return [self.announce] if self.announce else []

    def reads(self) -> set[str]:
        rendered = [self.reason, *self.context.values()]  # not heard, but rendered from variables
        return super().reads() | {n for t in rendered for n in PLACEHOLDER.findall(t)}
