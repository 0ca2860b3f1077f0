"""Core verbs: say, menu, collect, branch, set, goto, transfer, hangup."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

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


@register("menu")
class Menu(Verb):
    """Spoken or keyed options -> targets."""

    waits_for_caller = True
    falls_through = False

    class Option(Verb):
        name = "menu option"
        keys: str | None = Field(None, pattern=r"^[0-9*#]$")
        words: list[str] = Field(default_factory=list)
        goto: str

    prompt: str = Field(min_length=1)
    reprompts: list[str] = Field(default_factory=list)  # said on retry 1, 2, ... (escalating help)
    options: list[Option] = Field(min_length=1)
    no_match: str | None = None
    no_input: str | None = None
    timeout_s: float = Field(6.0, gt=0, le=60)
    retries: int = Field(2, ge=0, le=5)

    def targets(self) -> list[str]:
        return [o.goto for o in self.options] + [t for t in (self.no_match, self.no_input) if t]


@register("collect")
class Collect(Verb):
    """Ask for a value (speech and/or DTMF) into a variable."""

    waits_for_caller = True
    prompt: str = Field(min_length=1)
    reprompts: list[str] = Field(default_factory=list)  # said on retry 1, 2, ... (escalating help)
    into: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    kind: Literal["digits", "yes_no", "number", "choice", "text"] = "text"
    min_digits: int = Field(1, ge=1, le=32)
    max_digits: int = Field(16, ge=1, le=32)
    terminator: str = Field("#", pattern=r"^[*#]$")
    choices: list[str] = Field(default_factory=list)
    sensitive: bool = False  # PINs, card numbers: never logged, masked in transcripts
    min_confidence: float = Field(0.0, ge=0, le=1)  # spoken answers below this count as no match
    validate_pattern: str | None = Field(None, alias="validate", max_length=200)  # regex the value must match
    timeout_s: float = Field(6.0, gt=0, le=60)
    retries: int = Field(2, ge=0, le=5)
    no_input: str | None = None
    no_match: str | None = None

    @field_validator("validate_pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"validate is not a valid regular expression: {exc}") from None
        return v

    def targets(self) -> list[str]:
        return [t for t in (self.no_match, self.no_input) if t]


@register("branch")
class Branch(Verb):
    falls_through = False

    class Case(Verb):
        name = "branch case"
        when: str = Field(min_length=1)  # a condition on variables, e.g. "balance > 100"
        goto: str

        @field_validator("when")
        @classmethod
        def _condition(cls, v: str) -> str:
            from voicebot.dialplan.conditions import parse

            parse(v)  # ConditionError is a ValueError: reported at the field
            return v

    cases: list[Case] = Field(min_length=1)
    default: str

    def targets(self) -> list[str]:
        return [c.goto for c in self.cases] + [self.default]


@register("set")
class Set(Verb):
    values: dict[str, str | int | float | bool] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _names(cls, v: dict[str, object]) -> dict[str, object]:
        for key in v:
            if not key.isidentifier():
                raise ValueError(f"variable name {key!r} must be letters, digits and _")
        return v


@register("goto")
class Goto(Verb):
    falls_through = False
    shorthand = "step"
    step: str

    def targets(self) -> list[str]:
        return [self.step]


@register("transfer")
class Transfer(Verb):
    """Hand the caller to a human queue NAME (the admin configuration maps it to a SIP URI)."""

    ends_call = True
    falls_through = False
    shorthand = "queue"
    queue: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    announce: str | None = None
    reason: str = ""  # may use {var}: goes to the agent with the call (X-Voicebot-Reason)
    on_failure: str | None = None

    def targets(self) -> list[str]:
        return [self.on_failure] if self.on_failure else []

    def queues(self) -> list[str]:
        return [self.queue]


@register("hangup")
class Hangup(Verb):
    ends_call = True
    falls_through = False
    shorthand = "say"
    say: str | None = None
    disposition: str = "completed"
