"""The verb registry: name -> pydantic model of the verb's parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Verb(BaseModel):
    """Base of every verb's parameters; unknown fields are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    name: ClassVar[str]
    waits_for_caller: ClassVar[bool] = False  # collect/menu: a loop through it cannot spin
    ends_call: ClassVar[bool] = False  # hangup/transfer: a path may end here
    shorthand: ClassVar[str | None] = None  # `say: Hello` means `say: {text: Hello}`
    # After the verb, does the call go on to the step below (when there is no `next`)? Not for verbs
    # whose targets are the only ways on (menu, branch, goto), nor for ending ones (hangup, transfer).
    falls_through: ClassVar[bool] = True

    def targets(self) -> list[str]:
        """Step ids this verb can continue at (besides the step's `next`)."""
        return []

    def queues(self) -> list[str]:
        return []


VERBS: dict[str, type[Verb]] = {}


def register(name: str) -> Callable[[type[Verb]], type[Verb]]:
    def deco(cls: type[Verb]) -> type[Verb]:
        cls.name = name
        VERBS[name] = cls
        return cls

    return deco
