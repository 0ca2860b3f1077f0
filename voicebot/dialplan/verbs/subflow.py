"""`subflow` and `return`: reusable sub-dialplans in their own files.

``subflow: verify_caller.yaml`` runs that file's steps, then continues below the subflow step once
one of them says ``return``. The loader inlines the sub-dialplan per call site (step ids become
``<call site>/<step>``), so the checker and interpreter see one flat plan.
"""

from __future__ import annotations

from pydantic import Field, PrivateAttr

from voicebot.dialplan.verbs.registry import Verb, register


@register("subflow")
class Subflow(Verb):
    """Run the sub-dialplan in ``file`` (relative to this dialplan)."""

    falls_through = False  # the way on is through the subflow's `return`
    shorthand = "file"
    file: str = Field(pattern=r"^[^\s]+\.ya?ml$")
    _entry: str | None = PrivateAttr(None)  # the inlined first step, set by the loader

    def targets(self) -> list[str]:
        return [self._entry] if self._entry else []


@register("return")
class Return(Verb):
    """End a subflow: continue after the step that called it."""

    falls_through = False
    # the caller's continuation, set by the loader ("" when the call site has none; None: not inlined)
    _to: str | None = PrivateAttr(None)

    def targets(self) -> list[str]:
        return [self._to] if self._to else []
