"""`collect`: ask for one value (speech and/or keys) and store it in a variable."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from voicebot.dialplan.patterns import PatternError, compile_pattern
from voicebot.dialplan.verbs.registry import VARIABLE_NAME, Verb, register


class Choice(Verb):
    """One allowed answer of a `choice` collect, with the other words callers use for it."""

    name = "choice"
    value: str = Field(min_length=1)
    synonyms: list[str] = Field(default_factory=list)
    keys: str | None = Field(None, pattern=r"^[0-9*]$")  # a key that picks it

    def words(self) -> list[str]:
        return [self.value, *self.synonyms]


@register("collect")
class Collect(Verb):
    """Ask for a value into ``into``; ``<into>_via`` says whether it came by "speech" or "keys"."""

    waits_for_caller = True
    prompt: str = Field(min_length=1)
    reprompts: list[str] = Field(default_factory=list)  # said on retry 1, 2, ... (escalating help)
    into: str = Field(pattern=VARIABLE_NAME)
    kind: Literal["digits", "yes_no", "number", "date", "time", "choice", "text"] = "text"
    min_digits: int = Field(1, ge=1, le=32)
    max_digits: int = Field(16, ge=1, le=32)
    terminator: str = Field("#", pattern=r"^[*#]$")
    choices: list[Choice] = Field(default_factory=list)
    min_value: float | None = None  # number: the smallest accepted
    max_value: float | None = None
    sensitive: bool = False  # PINs, card numbers: never logged, masked in transcripts
    min_confidence: float = Field(0.0, ge=0, le=1)  # spoken answers below this count as no match
    # A regex the value must match, run with RE2 (linear time; voicebot/dialplan/patterns.py).
    validate_pattern: str | None = Field(None, alias="validate", max_length=200)
    timeout_s: float | None = Field(None, gt=0, le=60)  # None: settings.no_input_timeout_s
    end_of_turn_ms: int | None = Field(None, ge=200, le=3000)  # None: settings.end_of_turn_ms
    retries: int = Field(2, ge=0, le=5)
    no_input: str | None = None
    no_match: str | None = None

    @field_validator("choices", mode="before")
    @classmethod
    def _plain_choices(cls, v: object) -> object:
        # `choices: [red, blue]` is shorthand for `[{value: red}, {value: blue}]`
        return [{"value": c} if isinstance(c, str) else c for c in v] if isinstance(v, list) else v

    @field_validator("validate_pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                compile_pattern(v)
            except PatternError as exc:
                raise ValueError(f"validate: {exc}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Collect:
        if self.kind == "choice" and not self.choices:
            raise ValueError("a choice collect needs `choices`")
        if self.choices and self.kind != "choice":
            raise ValueError(f"`choices` only apply to kind: choice (this is kind: {self.kind})")
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits is larger than max_digits")
        return self

    def targets(self) -> list[str]:
        return [t for t in (self.no_match, self.no_input) if t]

    def sets(self) -> list[str]:
        return [self.into, f"{self.into}_via"]

    def texts(self) -> list[str]:
        return [self.prompt, *self.reprompts]

    def hints(self) -> tuple[str, ...]:
        """Words recognition should expect (biasing, and `expects` in the call worker)."""
        if self.kind == "yes_no":
            return ("yes", "no")
        return tuple(w for c in self.choices for w in c.words())
