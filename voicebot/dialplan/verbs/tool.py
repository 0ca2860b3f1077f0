"""The `tool` verb: call an HTTP integration declared in the dialplan, map the JSON result to variables."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from voicebot.dialplan.verbs.registry import Verb, register


class Integration(BaseModel):
    """An HTTP service a dialplan may call (declared once under `integrations:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    base_url: str = Field(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    # Header values may reference secrets as ${env:NAME}; they are resolved at call time, never logged.
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(3.0, gt=0, le=30)
    retries: int = Field(1, ge=0, le=3)


@register("tool")
class Tool(Verb):
    """Call ``integration`` at ``path`` (``{var}`` placeholders, URL-quoted), store ``result`` fields."""

    integration: str
    method: Literal["GET", "POST", "PUT", "PATCH"] = "GET"
    path: str = Field("/", pattern=r"^/[^\s]*$")
    body: dict[str, Any] | None = None  # string values may use {var} placeholders
    result: dict[str, str] = Field(default_factory=dict)  # variable <- dotted path in the JSON reply
    on_error: str | None = None
    announce: str | None = None  # said before the call ("One moment while I look that up.")

    @field_validator("path")
    @classmethod
    def _no_escape(cls, v: str) -> str:
        if ".." in v or "//" in v:
            raise ValueError(
                "path must not contain '..' or '//' (it is appended to the integration's base URL)"
            )
        return v

    def targets(self) -> list[str]:
        return [self.on_error] if self.on_error else []
