"""`set`: give variables values (text may use ``{variables}``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from voicebot.dialplan.verbs.registry import PLACEHOLDER, Verb, register


@register("set")
class Set(Verb):
    """``set: {greeted: true, label: "{first} {last}"}``."""

    values: dict[str, str | int | float | bool | None] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _names(cls, v: dict[str, object]) -> dict[str, object]:
        for key in v:
            if not key.isidentifier():
                raise ValueError(f"variable name {key!r} must be letters, digits and _")
        return v

    def sets(self) -> list[str]:
        return list(self.values)

    def reads(self) -> set[str]:
        return {n for v in self.values.values() if isinstance(v, str) for n in PLACEHOLDER.findall(v)}
