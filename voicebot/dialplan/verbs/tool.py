"""`tool`: call an HTTP integration declared in the dialplan; map the JSON reply to variables."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from voicebot.dialplan.verbs.registry import PLACEHOLDER, Verb, register, variable_names

RESULTS = ("tool_status", "tool_error")  # "ok" | "error" | "declined", and why it failed


class Integration(BaseModel):
    """An HTTP service a dialplan may call (declared once under `integrations:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    base_url: str = Field(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    # Header values may reference secrets as ${env:NAME}; they are resolved at call time, never logged.
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(3.0, gt=0, le=30)
    retries: int = Field(1, ge=0, le=3)


class Request(BaseModel):
    """One HTTP call to a declared integration: what a `tool` step and an agent's tool both make."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    integration: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field("/", pattern=r"^/[^\s]*$")
    body: dict[str, Any] | None = None  # string values may use {var} placeholders
    result: dict[str, str] = Field(default_factory=dict)  # variable <- dotted path in the JSON reply
    # May the call be sent again if the worker died while it was in flight (with the same
    # Idempotency-Key)? Default: only for GET. A POST that books or pays must say so itself.
    retry_safe: bool | None = None
    announce: str | None = None  # said before the call ("One moment while I look that up.")
    # Ask before acting for the caller ("Shall I book {date} at {time}?"): yes calls, no declines.
    confirm: str | None = Field(None, min_length=1)

    @field_validator("path")
    @classmethod
    def _no_escape(cls, v: str) -> str:
        if ".." in v or "//" in v:
            raise ValueError(
                "path must not contain '..' or '//' (it is appended to the integration's base URL)"
            )
        return v

    @field_validator("result")
    @classmethod
    def _variables(cls, v: dict[str, str]) -> dict[str, str]:
        variable_names(v, "result variable")
        return v

    def safe_to_retry(self) -> bool:
        return self.retry_safe if self.retry_safe is not None else self.method == "GET"

    def request_reads(self) -> set[str]:
        found = set(PLACEHOLDER.findall(self.path))
        for value in (self.body or {}).values():
            if isinstance(value, str):
                found |= set(PLACEHOLDER.findall(value))
        return found


@register("tool")
class Tool(Request, Verb):
    """Call ``integration`` at ``path`` (``{var}`` placeholders, URL-quoted), store ``result`` fields."""

    on_error: str | None = None
    on_decline: str | None = None  # where "no" goes (default: on below, with tool_status=declined)

    def waits(self) -> bool:
        return self.confirm is not None

    def targets(self) -> list[str]:
        return [t for t in (self.on_error, self.on_decline) if t]

    def sets(self) -> list[str]:
        return [*self.result, *RESULTS]

    def texts(self) -> list[str]:
        return [t for t in (self.announce, self.confirm) if t]

    def reads(self) -> set[str]:
        return super().reads() | self.request_reads()
