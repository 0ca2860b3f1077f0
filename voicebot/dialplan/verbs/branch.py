"""`branch`: the first case whose condition on variables holds, else `default`."""

from __future__ import annotations

from pydantic import Field, field_validator

from voicebot.dialplan import conditions
from voicebot.dialplan.verbs.registry import Verb, register


class BranchCase(Verb):
    """``when`` (a condition such as ``balance > 100 and verified``) -> ``goto``."""

    name = "branch case"
    when: str = Field(min_length=1)
    goto: str

    @field_validator("when")
    @classmethod
    def _condition(cls, v: str) -> str:
        conditions.parse(v)  # ConditionError is a ValueError: reported at the field
        return v


@register("branch")
class Branch(Verb):
    """Choose the next step from variables (results of earlier steps)."""

    falls_through = False

    cases: list[BranchCase] = Field(min_length=1)
    default: str

    def targets(self) -> list[str]:
        return [c.goto for c in self.cases] + [self.default]

    def reads(self) -> set[str]:
        return set().union(*(conditions.names(c.when) for c in self.cases))
