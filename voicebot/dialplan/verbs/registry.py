"""The verb registry: name -> pydantic model of the verb's parameters.

Each verb lives in its own module and registers itself by the name admins write in a step
(``say:``, ``collect:``, ...). The model validates the step; its methods tell the checker where the
verb can go, which queues it uses and which variables it sets or reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
VARIABLE_NAME = r"^[a-z_][a-z0-9_]*$"


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

    def entries(self) -> list[str]:
        """Step ids other calls start at (a callback's entry): reachable, not a way on from here."""
        return []

    def waits(self) -> bool:
        """Does running this step wait for the caller (so a loop through it cannot spin)?"""
        return self.waits_for_caller

    def queues(self) -> list[str]:
        """Queue names this verb transfers to."""
        return []

    def sets(self) -> list[str]:
        """Variables this verb sets (its results, which later steps branch on)."""
        return []

    def texts(self) -> list[str]:
        """Texts the caller hears; ``{name}`` placeholders in them read variables."""
        return []

    def reads(self) -> set[str]:
        """Variables this verb reads."""
        return {name for text in self.texts() for name in PLACEHOLDER.findall(text)}


def variable_names(names: Iterable[str], what: str) -> None:
    """Keys that become dialplan variables must be valid variable names (ValueError says which)."""
    for name in names:
        if not PLACEHOLDER.fullmatch("{" + name + "}"):
            raise ValueError(f"{what} {name!r} must be lower-case letters, digits and _")


VERBS: dict[str, type[Verb]] = {}
V = TypeVar("V", bound=type[Verb])


def register(name: str) -> Callable[[V], V]:
    """Class decorator: make a verb model available under ``name`` in dialplan steps."""

    def deco(cls: V) -> V:
        cls.name = name
        VERBS[name] = cls
        return cls

    return deco
