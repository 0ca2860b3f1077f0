"""Verbs for open conversations: `agent` (an LLM turn loop) and `record` (voicemail)."""

from __future__ import annotations

from pydantic import Field

from voicebot.dialplan.verbs.registry import Verb, register


@register("agent")
class Agent(Verb):
    """An LLM conversation. Validated here; run by the LLM agent (a later issue): until then a call
    that reaches it goes to `on_error` or the plan's `error` handler."""

    waits_for_caller = True
    instructions: str = Field(min_length=1, max_length=8000)
    tools: list[str] = Field(default_factory=list)  # names of the plan's integrations it may call
    max_turns: int = Field(8, ge=1, le=50)
    done_when: str | None = None  # a condition on variables that ends the conversation
    on_error: str | None = None

    def targets(self) -> list[str]:
        return [self.on_error] if self.on_error else []


@register("record")
class Record(Verb):
    """Voicemail: ask for consent, then record the caller until # / silence / ``max_s``."""

    waits_for_caller = True
    consent: str = Field("This call will be recorded. Press 1 or say yes to leave a message.", min_length=1)
    prompt: str = Field("Please speak after the tone. Press hash when you are done.", min_length=1)
    into: str = Field("recording", pattern=r"^[a-z_][a-z0-9_]*$")
    max_s: float = Field(60.0, gt=0, le=600)
    no_consent: str | None = None

    def targets(self) -> list[str]:
        return [self.no_consent] if self.no_consent else []
