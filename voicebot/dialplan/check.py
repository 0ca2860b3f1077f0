"""Semantic checks on a parsed Plan: targets, reachability, endless loops, endings, queues."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from voicebot.dialplan import conditions
from voicebot.dialplan.plan import Plan, Step, did_you_mean, parse
from voicebot.dialplan.verbs.basic import Branch, Collect, Set
from voicebot.dialplan.verbs.tool import Tool
from voicebot.dialplan.yamlsafe import Diagnostic, YamlError


def successors(plan: Plan, step: Step) -> list[str]:
    """Where control can go after ``step`` (ending verbs continue only on their failure target)."""
    out = list(step.verb.targets())
    on = continuation(plan, step)
    return [*out, on] if on else out


def continuation(plan: Plan, step: Step) -> str | None:
    """The step's normal way on: its `next`, else (for verbs that fall through) the step below."""
    if step.next:
        return step.next
    return plan.after(step.id) if step.verb.falls_through else None


def check_plan(plan: Plan, known_queues: Iterable[str] | None = None) -> list[Diagnostic]:
    diags: list[Diagnostic] = list(plan.warnings)

    def at(step: Step, severity: str, message: str) -> None:
        diags.append(Diagnostic(plan.file, step.line, step.column, severity, message))

    ids = list(plan.steps)
    if plan.start not in plan.steps:
        diags.append(Diagnostic(plan.file, 1, 1, "error", f"start step {plan.start!r} does not exist"))
        return diags
    for step in plan.steps.values():
        for target in [*step.verb.targets(), *([step.next] if step.next else [])]:
            if target not in plan.steps:
                at(
                    step,
                    "error",
                    f"step {step.id!r} goes to {target!r}, which does not exist{did_you_mean(target, ids)}",
                )
        for queue in step.verb.queues():
            if queue not in plan.queues:
                at(step, "error", f"queue {queue!r} is not declared in this dialplan's `queues`")
            elif known_queues is not None and queue not in set(known_queues):
                at(step, "error", f"queue {queue!r} is not configured by the admin (settings `queues`)")
        if step.verb.falls_through and continuation(plan, step) is None:
            at(step, "error", f"the call ends after step {step.id!r} without a hangup or transfer")
    _undefined_variables(plan, at)
    reachable = _reachable(plan)
    for step in plan.steps.values():
        if step.id not in reachable:
            at(step, "warning", f"step {step.id!r} can never be reached")
    for cycle_step in _spinning_cycles(plan, reachable):
        at(cycle_step, "error", f"step {cycle_step.id!r} is in a loop that never waits for the caller")
    return diags


def _undefined_variables(plan: Plan, at: Callable[[Step, str, str], None]) -> None:
    defined = set(plan.variables)
    for step in plan.steps.values():
        if isinstance(step.verb, Collect):
            defined.add(step.verb.into)
        elif isinstance(step.verb, Set):
            defined.update(step.verb.values)
        elif isinstance(step.verb, Tool):
            defined.update(step.verb.result)
    for step in plan.steps.values():
        used: set[str] = set()
        if isinstance(step.verb, Branch):
            for case in step.verb.cases:
                used |= conditions.names(case.when)
        for text in _texts(step):
            used |= set(re.findall(r"\{([a-z_][a-z0-9_]*)\}", text))
        for name in sorted(used - defined):
            at(
                step,
                "warning",
                f"variable {name!r} is never set (declare it in `variables`, or collect/set it)",
            )


def _texts(step: Step) -> list[str]:
    v = step.verb
    return [
        t
        for t in (
            getattr(v, "text", None),
            getattr(v, "prompt", None),
            getattr(v, "say", None),
            getattr(v, "announce", None),
        )
        if isinstance(t, str)
    ]


def _reachable(plan: Plan) -> set[str]:
    seen, todo = set(), [plan.start, *plan.handlers.targets()]
    while todo:
        sid = todo.pop()
        if sid in seen or sid not in plan.steps:
            continue
        seen.add(sid)
        todo += successors(plan, plan.steps[sid])
    return seen


def _spinning_cycles(plan: Plan, reachable: set[str]) -> list[Step]:
    """Steps on a cycle made only of steps that never wait (Tarjan's SCCs over non-waiting steps)."""
    nodes = [s for s in reachable if not plan.steps[s].verb.waits_for_caller]
    graph = {s: [t for t in successors(plan, plan.steps[s]) if t in nodes] for s in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[Step] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the step count (small files)
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                order = {sid: i for i, sid in enumerate(plan.steps)}
                out.append(plan.steps[min(comp, key=order.__getitem__)])

    for node in nodes:
        if node not in index:
            visit(node)
    return out


def check_paths(paths: Iterable[Path], known_queues: Iterable[str] | None = None) -> list[Diagnostic]:
    """Check dialplan files; never raises for bad content: everything becomes a diagnostic."""
    diags: list[Diagnostic] = []
    for path in paths:
        try:
            plan = parse(path.read_bytes(), str(path))
        except OSError as exc:
            diags.append(Diagnostic(str(path), 1, 1, "error", f"cannot read: {exc.strerror}"))
            continue
        except YamlError as exc:
            diags += exc.diagnostics
            continue
        diags += check_plan(plan, known_queues)
    return diags
