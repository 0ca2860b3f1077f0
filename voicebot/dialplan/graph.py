"""`voicebot dialplan graph`: the flow as Mermaid (renders in GitHub/GitLab markdown) or Graphviz dot."""

from __future__ import annotations

import re

from voicebot.dialplan.check import continuation
from voicebot.dialplan.plan import Plan, Step
from voicebot.dialplan.verbs import Verb
from voicebot.dialplan.verbs.branch import Branch
from voicebot.dialplan.verbs.menu import Menu

# Which field of a verb leads where, as a label on the arrow.
_LABELS = {
    "no_match": "no match",
    "no_input": "no input",
    "on_failure": "transfer failed",
    "on_error": "error",
    "on_decline": "declined",
    "no_consent": "no consent",
}


def edges(plan: Plan, step: Step) -> list[tuple[str, str]]:
    """(target, label) pairs leaving ``step``."""
    v = step.verb
    out: list[tuple[str, str]] = []
    if isinstance(v, Menu):
        out += [(o.goto, "/".join([*([o.keys] if o.keys else []), *o.words[:2]])) for o in v.options]
    elif isinstance(v, Branch):
        out += [(c.goto, c.when) for c in v.cases] + [(v.default, "else")]
    out += [(t, label) for name, label in _LABELS.items() if isinstance(t := getattr(v, name, None), str)]
    labelled = {t for t, _ in out}
    out += [(t, "") for t in v.targets() if t not in labelled]  # goto, subflow entry, return
    on = continuation(plan, step)
    if on and on not in {t for t, _ in out}:
        out.append((on, ""))
    return out


def _id(step_id: str) -> str:
    """A node id both tools accept (subflow steps have '/' in their ids)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", step_id)


def _label(step: Step) -> str:
    v: Verb = step.verb
    detail = getattr(v, "queue", None) or getattr(v, "file", None) or getattr(v, "integration", None) or ""
    return f"{step.id}: {v.name}{' ' + detail if detail else ''}".replace('"', "'")


def mermaid(plan: Plan) -> str:
    """``flowchart TD`` text: rounded = ends the call, rhombus = waits for the caller."""
    lines = ["flowchart TD"]
    for step in plan.steps.values():
        shape = ("([", "])") if step.verb.ends_call else ("{", "}") if step.verb.waits() else ("[", "]")
        lines.append(f'  {_id(step.id)}{shape[0]}"{_label(step)}"{shape[1]}')
    for step in plan.steps.values():
        for target, label in edges(plan, step):
            text = label.replace('"', "'")
            arrow = f'-->|"{text}"|' if text else "-->"
            lines.append(f"  {_id(step.id)} {arrow} {_id(target)}")
    return "\n".join(lines) + "\n"


def dot(plan: Plan) -> str:
    """Graphviz ``digraph`` text (render with ``dot -Tsvg``)."""
    lines = [f'digraph "{_id(plan.id)}" {{', "  rankdir=TB;"]
    for step in plan.steps.values():
        shape = "doubleoctagon" if step.verb.ends_call else "diamond" if step.verb.waits() else "box"
        lines.append(f'  "{_id(step.id)}" [shape={shape}, label="{_label(step)}"];')
    for step in plan.steps.values():
        for target, label in edges(plan, step):
            lines.append(
                f'  "{_id(step.id)}" -> "{_id(target)}" [label="{label.replace(chr(34), chr(39))}"];'
            )
    return "\n".join([*lines, "}"]) + "\n"
