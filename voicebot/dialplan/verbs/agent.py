"""`agent`: an LLM conversation, with the tools the admin gave it.

A tool is one HTTP call to a declared integration (as a `tool` step makes), offered to the LLM as a
function with a JSON Schema built from its ``parameters``. Parameters are identifiers, numbers,
dates, times and choices, never free text: a string parameter needs an ``enum`` or a ``pattern``
(matched by RE2), so nothing the caller talks the LLM into can become a URL, a phone number or a
query. What a tool may do is the admin's: ``allowed_when`` (a condition on variables, such as a
verification a subflow made), ``confirm`` (read back, the caller says yes or presses 1), and the
integration's base URL, which must be on the settings' ``tools_allow``. The LLM's one way to a
person is ``handover``, a step of the plan (its queue is the plan's, on the admin's list).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from voicebot.dialplan import conditions, patterns
from voicebot.dialplan.verbs.registry import PLACEHOLDER, Verb, register, variable_names
from voicebot.dialplan.verbs.tool import Request

RESULTS = ("agent_status", "agent_turns")  # status: "done" | "max_turns" | "unavailable" | "tool_failed"
HANDOVER_TOOL = "hand_over"
TOOL_NAME = r"^[a-z][a-z0-9_]{0,47}$"
MAX_STRING = 64  # an identifier, a choice: nothing longer goes to a backend


def checked_condition(v: str | None) -> str | None:
    if v is not None:
        conditions.parse(v)  # ConditionError is a ValueError: reported at the field
    return v


class Param(BaseModel):
    """One argument of an agent tool. Strings need ``enum`` or ``pattern`` (no free text)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["string", "integer", "number", "boolean", "date", "time"] = "string"
    description: str = Field("", max_length=300)
    enum: list[str] | None = Field(None, min_length=1, max_length=50)
    pattern: str | None = Field(None, min_length=1, max_length=200)
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False
    sensitive: bool = False  # redacted in the call's record (an account number, a PIN)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            patterns.compile_pattern(v)
        return v

    @model_validator(mode="after")
    def _no_free_text(self) -> Param:
        if self.type == "string" and not self.enum and not self.pattern:
            raise ValueError(
                "a string parameter needs `enum` or `pattern`: tools take identifiers and choices, "
                "never free text"
            )
        if self.enum and self.type != "string":
            raise ValueError("`enum` is for string parameters")
        if (self.minimum is not None or self.maximum is not None) and self.type not in ("integer", "number"):
            raise ValueError("`minimum`/`maximum` are for integer and number parameters")
        return self

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any]
        if self.type == "date":
            out = {"type": "string", "format": "date", "description": "YYYY-MM-DD"}
        elif self.type == "time":
            out = {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$", "description": "HH:MM"}
        else:
            out = {"type": self.type}
        if self.description:
            out["description"] = self.description
        if self.enum:
            out["enum"] = list(self.enum)
        if self.pattern:
            out["pattern"] = self.pattern
        if self.type == "string":
            out["maxLength"] = MAX_STRING
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


class AgentTool(Request):
    """An HTTP call the LLM may ask for, with typed parameters and the admin's policy."""

    description: str = Field(min_length=1, max_length=1000)
    parameters: dict[str, Param] = Field(default_factory=dict, max_length=20)
    allowed_when: str | None = None  # e.g. "verified == true": otherwise refused (a policy block)
    refusal: str = Field(
        "The caller must be verified first.", min_length=1, max_length=300
    )  # what the LLM is told when allowed_when does not hold
    # Step-up: when allowed_when does not hold, run this step first (e.g. a PIN subflow whose
    # `next` comes back to the agent step); back there, the same call is checked again and made
    # if it now holds (once: still not allowed, the model is told `refusal`).
    verify: str | None = None

    @field_validator("allowed_when")
    @classmethod
    def _condition(cls, v: str | None) -> str | None:
        return checked_condition(v)

    @field_validator("parameters")
    @classmethod
    def _names(cls, v: dict[str, Param]) -> dict[str, Param]:
        variable_names(v, "parameter")
        return v

    def function(self, name: str) -> dict[str, Any]:
        """The OpenAI-style function tool the LLM is offered."""
        return {
            "type": "function",
            "function": {
                "name": name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": {k: p.json_schema() for k, p in self.parameters.items()},
                    "required": [k for k, p in self.parameters.items() if not p.optional],
                    "additionalProperties": False,
                },
            },
        }


def handover_function() -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": HANDOVER_TOOL,
            "description": "Put the caller through to a person (when asked, or when you cannot help).",
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        },
    }


@register("agent")
class Agent(Verb):
    """The LLM talks with the caller until ``done_when`` holds or ``max_turns`` replies; it may call
    ``tools`` and hand over to ``handover``. If it cannot answer, or a tool fails, ``on_error``."""

    waits_for_caller = True
    instructions: str = Field(min_length=1, max_length=8000)
    tools: dict[str, AgentTool] = Field(default_factory=dict, max_length=20)
    handover: str | None = None  # the step the LLM's hand_over tool goes to (a transfer)
    max_turns: int = Field(8, ge=1, le=50)
    done_when: str | None = None  # a condition on variables that ends the conversation
    on_error: str | None = None

    @field_validator("done_when")
    @classmethod
    def _condition(cls, v: str | None) -> str | None:
        return checked_condition(v)

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_map(cls, v: Any) -> Any:
        if isinstance(v, list):
            raise ValueError(
                "tools is a mapping of tool name -> {description, integration, method, path, "
                "parameters, ...}, not a list"
            )
        return v

    @field_validator("tools")
    @classmethod
    def _tool_names(cls, v: dict[str, AgentTool]) -> dict[str, AgentTool]:
        for name in v:
            if not re.fullmatch(TOOL_NAME, name) or name == HANDOVER_TOOL:
                raise ValueError(
                    f"tool name {name!r}: lower-case letters, digits and _, at most 48, not {HANDOVER_TOOL!r}"
                )
        return v

    def functions(self) -> tuple[dict[str, Any], ...]:
        """What the LLM is offered: the tools, and hand_over when there is a handover step."""
        tools = [tool.function(name) for name, tool in self.tools.items()]
        if self.handover:
            tools.append(handover_function())
        return tuple(tools)

    def targets(self) -> list[str]:
        verify = [t.verify for t in self.tools.values() if t.verify]
        return [t for t in (self.on_error, self.handover) if t] + verify

    def sets(self) -> list[str]:
        sets = [*RESULTS, "tool_status", "tool_error"]
        for tool in self.tools.values():
            sets += [*tool.parameters, *tool.result]
        return sets

    def texts(self) -> list[str]:
        return [t for tool in self.tools.values() for t in (tool.announce, tool.confirm) if t]

    def spoken_reads(self) -> set[str]:
        """Variables that reach the caller or the LLM (not those only sent to a tool's backend)."""
        return super().reads() | set(PLACEHOLDER.findall(self.instructions))

    def reads(self) -> set[str]:
        found = self.spoken_reads()
        for tool in self.tools.values():
            found |= tool.request_reads()
        return found
