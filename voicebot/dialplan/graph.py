"""`voicebot dialplan graph`: the flow as Mermaid (renders in GitHub/GitLab markdown) or Graphviz dot."""

from __future__ import annotations

from voicebot.dialplan.check import continuation
from voicebot.dialplan.plan import Plan, Step
from voicebot.dialplan.verbs.basic import Branch, Collect, Menu, Transfer


def edges(plan: Plan, step: Step) -> list[tuple[str, str]]:
    """(target, label) pairs leaving ``step``."""
    v = step.verb
    out: list[tuple[str, str]] = []
    if isinstance(v, Menu):
        out += [(o.goto, "/".join([*([o.keys] if o.keys else []), *o.words[:2]])) for o in v.options]
    if isinstance(v, Branch):
        out += [(c.goto, c.when) for c in v.cases] + [(v.default, "else")]
    if isinstance(v, Menu | Collect):
        out += [(t, label) for t, label in ((v.no_match, "no match"), (v.no_input, "no input")) if t]
    if isinstance(v, Transfer) and v.on_failure:
        out.append((v.on_failure, "transfer failed"))
    on = continuation(plan, step)
    if on and not isinstance(v, Menu | Branch):
        out.append((on, ""))
    elif step.next and isinstance(v, Menu | Branch):
        out.append((step.next, ""))
    return out


def _label(step: Step) -> str:
    v = step.verb
    detail = getattr(v, "queue", None) or ""
    return f"{step.id}: {v.name}{' ' + detail if detail else ''}"


def mermaid(plan: Plan) -> str:
    lines = ["flowchart TD"]
    for step in plan.steps.values():
        shape = (
            ("([", "])") if step.verb.ends_call else ("{", "}") if step.verb.waits_for_caller else ("[", "]")
        )
        lines.append(f'  {step.id}{shape[0]}"{_label(step)}"{shape[1]}')
    for step in plan.steps.values():
        for target, label in edges(plan, step):
            text = label.replace('"', "'")
            lines.append(f'  {step.id} -->|"{text}"| {target}' if text else f"  {step.id} --> {target}")
    return "\n".join(lines) + "\n"


def dot(plan: Plan) -> str:
    lines = [f'digraph "{plan.id}" {{', "  rankdir=TB;"]
    for step in plan.steps.values():
        shape = "doubleoctagon" if step.verb.ends_call else "diamond" if step.verb.waits_for_caller else "box"
        lines.append(f'  "{step.id}" [shape={shape}, label="{_label(step)}"];')
    for step in plan.steps.values():
        for target, label in edges(plan, step):
            lines.append(f'  "{step.id}" -> "{target}" [label="{label.replace(chr(34), chr(39))}"];')
    return "\n".join([*lines, "}"]) + "\n"
