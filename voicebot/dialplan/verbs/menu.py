"""`menu`: spoken or keyed options, each going to its own step."""

from __future__ import annotations

from pydantic import Field

from voicebot.dialplan.verbs.registry import VARIABLE_NAME, Verb, register


class MenuOption(Verb):
    """One choice: a key and/or words (synonyms) the caller may say."""

    name = "menu option"
    keys: str | None = Field(None, pattern=r"^[0-9*#]$")
    words: list[str] = Field(default_factory=list)
    goto: str
    value: str | None = None  # stored in the menu's `into`; default: the first word, else the key

    def label(self) -> str:
        return self.value or (self.words[0] if self.words else self.keys or self.goto)


@register("menu")
class Menu(Verb):
    """Say ``prompt``, then go where the caller's key or words lead; reprompt on silence/no match."""

    waits_for_caller = True
    falls_through = False

    prompt: str = Field(min_length=1)
    reprompts: list[str] = Field(default_factory=list)  # said on retry 1, 2, ... (escalating help)
    options: list[MenuOption] = Field(min_length=1)
    into: str | None = Field(None, pattern=VARIABLE_NAME)  # the chosen option's value
    no_match: str | None = None
    no_input: str | None = None
    timeout_s: float | None = Field(None, gt=0, le=60)  # None: settings.no_input_timeout_s
    end_of_turn_ms: int | None = Field(None, ge=200, le=3000)  # None: settings.end_of_turn_ms
    retries: int = Field(2, ge=0, le=5)

    def targets(self) -> list[str]:
        return [o.goto for o in self.options] + [t for t in (self.no_match, self.no_input) if t]

    def sets(self) -> list[str]:
        return [self.into] if self.into else []

    def texts(self) -> list[str]:
        return [self.prompt, *self.reprompts]
