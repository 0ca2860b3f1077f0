"""`record`: voicemail - ask for consent, then record until # / ``max_s``."""

from __future__ import annotations

from pydantic import Field

from voicebot.dialplan.verbs.registry import VARIABLE_NAME, Verb, register


@register("record")
class Record(Verb):
    """Stores the WAV path in ``into`` ("" when nothing was recorded) and its length in ``<into>_s``."""

    waits_for_caller = True
    consent: str = Field("This call will be recorded. Press 1 or say yes to leave a message.", min_length=1)
    prompt: str = Field("Please speak after the tone. Press hash when you are done.", min_length=1)
    into: str = Field("recording", pattern=VARIABLE_NAME)
    max_s: float = Field(60.0, gt=0, le=600)
    no_consent: str | None = None

    def targets(self) -> list[str]:
        return [self.no_consent] if self.no_consent else []

    def sets(self) -> list[str]:
        return [self.into, f"{self.into}_s"]

    def texts(self) -> list[str]:
        return [self.consent, self.prompt]
