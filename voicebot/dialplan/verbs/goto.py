"""`goto`: continue at another step."""

from __future__ import annotations

from voicebot.dialplan.verbs.registry import Verb, register


@register("goto")
class Goto(Verb):
    """``goto: main_menu``."""

    falls_through = False
    shorthand = "step"
    step: str

    def targets(self) -> list[str]:
        return [self.step]
