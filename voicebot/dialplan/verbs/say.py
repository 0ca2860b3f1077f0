"""`say`: speak text (with ``{variables}``) or play a recorded WAV prompt."""

from __future__ import annotations

from pydantic import Field, model_validator

from voicebot.dialplan.verbs.registry import Verb, register


@register("say")
class Say(Verb):
    """Speak ``text``, or play the recorded ``audio`` WAV (``text`` then is its transcript/fallback)."""

    shorthand = "text"
    text: str | None = Field(None, min_length=1, max_length=2000)
    audio: str | None = None  # a WAV path, relative to the dialplan file
    barge_in: bool | None = None  # None: the dialplan's setting

    @model_validator(mode="after")
    def _something_to_say(self) -> Say:
        if not self.text and not self.audio:
            raise ValueError("say needs text or audio")
        return self

    def texts(self) -> list[str]:
        return [self.text] if self.text else []
