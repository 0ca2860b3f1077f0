"""`hangup`: say goodbye (optional) and end the call with a disposition for reports."""

from __future__ import annotations

from pydantic import Field

from voicebot.dialplan.verbs.registry import Verb, register


@register("hangup")
class Hangup(Verb):
    """``hangup: Goodbye.`` or ``hangup: {say: ..., disposition: resolved}``."""

    ends_call = True
    falls_through = False
    shorthand = "say"
    say: str | None = None
    disposition: str = Field("completed", pattern=r"^[a-z][a-z0-9_]{0,39}$")

    def texts(self) -> list[str]:
        return [self.say] if self.say else []
