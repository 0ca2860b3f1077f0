"""`agent`: an LLM conversation. Validated here; run by the LLM agent (a later issue)."""

from __future__ import annotations

from pydantic import Field, field_validator

from voicebot.dialplan import conditions
from voicebot.dialplan.verbs.registry import Verb, register

RESULTS = ("agent_status",)  # "done" | "max_turns" | "unavailable"


@register("agent")
class Agent(Verb):
    """Until the LLM agent exists a call that reaches it goes to `on_error` or the `error` handler."""

    waits_for_caller = True
    instructions: str = Field(min_length=1, max_length=8000)
    tools: list[str] = Field(default_factory=list)  # names of the plan's integrations it may call
    max_turns: int = Field(8, ge=1, le=50)
    done_when: str | None = None  # a condition on variables that ends the conversation
    on_error: str | None = None

    @field_validator("done_when")
    @classmethod
    def _condition(cls, v: str | None) -> str | None:
        if v is not None:
            conditions.parse(v)
        return v

    def targets(self) -> list[str]:
        return [self.on_error] if self.on_error else []

    def sets(self) -> list[str]:
        return list(RESULTS)
