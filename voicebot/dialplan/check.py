"""Semantic checks on a parsed Plan: targets, reachability, endless loops, endings, queues."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from voicebot.dialplan.plan import Plan, Step, did_you_mean, parse
from voicebot.dialplan.verbs.agent import Agent
from voicebot.dialplan.verbs.callback import Callback
from voicebot.dialplan.verbs.collect import Collect
from voicebot.dialplan.verbs.subflow import Return
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


# set when the call starts
BUILTIN_VARIABLES = frozenset({"caller", "called", "call_id", "today", "direction"})
_SECRET_REF = re.compile(r"^[^$]*(\$\{env:[A-Z][A-Z0-9_]*\}[^$]*)+$")
_SECRET_HEADERS = ("authorization", "api-key", "x-api-key", "token", "cookie", "secret", "password")


def check_plan(
    plan: Plan, known_queues: Iterable[str] | None = None, allowed_bases: Iterable[str] | None = None
) -> list[Diagnostic]:
    """Every semantic problem of a parsed plan (errors and warnings), in file order."""
    diags: list[Diagnostic] = list(plan.warnings)

    def at(step: Step, severity: str, message: str) -> None:
        diags.append(Diagnostic(step.file or plan.file, step.line, step.column, severity, message))

    if plan.start not in plan.steps:
        diags.append(Diagnostic(plan.file, 1, 1, "error", f"start step {plan.start!r} does not exist"))
        return diags
    _targets_and_endings(plan, at)
    _queues(plan, None if known_queues is None else set(known_queues), at)
    fallback = plan.settings.fallback_queue
    if fallback is not None and fallback not in plan.queues:
        hint = did_you_mean(fallback, plan.queues)
        message = f"settings.fallback_queue {fallback!r} is not declared in this dialplan's `queues`{hint}"
        diags.append(Diagnostic(plan.file, 1, 1, "error", message))
    diags += _integrations(plan, None if allowed_bases is None else list(allowed_bases))
    _undefined_variables(plan, at)
    _sensitive_spoken(plan, at)
    reachable = _reachable(plan)
    for step in plan.steps.values():
        if step.id not in reachable:
            at(step, "warning", f"step {step.id!r} can never be reached")
    for cycle_step in _spinning_cycles(plan, reachable):
        at(cycle_step, "error", f"step {cycle_step.id!r} is in a loop that never waits for the caller")
    return diags


def _targets_and_endings(plan: Plan, at: Callable[[Step, str, str], None]) -> None:
    ids = list(plan.steps)
    for step in plan.steps.values():
        for target in [*step.verb.targets(), *step.verb.entries(), *([step.next] if step.next else [])]:
            if target not in plan.steps:
                shown = target.rpartition("/")[2]
                at(
                    step,
                    "error",
                    f"step {step.id!r} goes to {shown!r}, which does not exist{did_you_mean(target, ids)}",
                )
        if step.verb.falls_through and continuation(plan, step) is None:
            at(step, "error", f"the call ends after step {step.id!r} without a hangup or transfer")
        if isinstance(step.verb, Return) and step.verb._to == "":
            at(step, "error", f"the call ends when the subflow returns to {step.id.split('/')[0]!r}")


def _queues(plan: Plan, known: set[str] | None, at: Callable[[Step, str, str], None]) -> None:
    for step in plan.steps.values():
        for queue in step.verb.queues():
            if queue not in plan.queues:
                hint = did_you_mean(queue, plan.queues)
                at(step, "error", f"queue {queue!r} is not declared in this dialplan's `queues`{hint}")
            elif known is not None and queue not in known:
                at(
                    step,
                    "error",
                    f"queue {queue!r} is not configured by the admin (settings `queues`: "
                    f"{', '.join(sorted(known)) or 'none'})",
                )


def _integrations(plan: Plan, allowed: list[str] | None) -> list[Diagnostic]:
    """Integrations must be under an allowlisted base; secrets only by reference."""
    out: list[Diagnostic] = []
    for name, spec in plan.integrations.items():
        line, col = plan.positions.get(("integrations", name), (1, 1))
        if allowed is not None and not any(
            spec.base_url.rstrip("/") == b.rstrip("/") or spec.base_url.startswith(b.rstrip("/") + "/")
            for b in allowed
        ):
            out.append(
                Diagnostic(
                    plan.file,
                    line,
                    col,
                    "error",
                    f"integration {name!r}: {spec.base_url} is not under an allowlisted base "
                    "(settings `tools_allow`)",
                )
            )
        for header, value in spec.headers.items():
            if header.lower() in _SECRET_HEADERS and not _SECRET_REF.match(value):
                out.append(
                    Diagnostic(
                        plan.file,
                        line,
                        col,
                        "error",
                        f"integration {name!r}: header {header!r} holds a literal secret; "
                        "write ${env:NAME} and set NAME in the environment",
                    )
                )
    return out


def _undefined_variables(plan: Plan, at: Callable[[Step, str, str], None]) -> None:
    defined = set(plan.variables) | BUILTIN_VARIABLES
    for step in plan.steps.values():
        defined.update(step.verb.sets())
    for step in plan.steps.values():
        for name in sorted(step.verb.reads() - defined):
            at(
                step,
                "warning",
                f"variable {name!r} is never set (declare it in `variables`, or collect/set it)"
                f"{did_you_mean(name, sorted(defined))}",
            )


def sensitive_variables(plan: Plan) -> set[str]:
    """Variables collected with ``sensitive: true`` (PINs, card numbers)."""
    return {s.verb.into for s in plan.steps.values() if isinstance(s.verb, Collect) and s.verb.sensitive}


def _sensitive_spoken(plan: Plan, at: Callable[[Step, str, str], None]) -> None:
    """A PIN read back to the caller or sent to the agent's desktop is a leak (tools may use it)."""
    secret = sensitive_variables(plan)
    for step in plan.steps.values():
        if isinstance(step.verb, Tool):
            continue
        if isinstance(step.verb, Callback):
            for name in sorted(set(step.verb.keep) & secret):
                at(
                    step,
                    "error",
                    f"sensitive variable {name!r} cannot be kept: kept values are stored with the booked job",
                )
        reads = step.verb.spoken_reads() if isinstance(step.verb, Agent) else step.verb.reads()
        for name in sorted(reads & secret):
            at(step, "warning", f"sensitive variable {name!r} is spoken or sent on here; is that intended?")


def _reachable(plan: Plan) -> set[str]:
    entries = [e for step in plan.steps.values() for e in step.verb.entries()]
    seen, todo = set(), [plan.start, *plan.handlers.targets(), *entries]
    while todo:
        sid = todo.pop()
        if sid in seen or sid not in plan.steps:
            continue
        seen.add(sid)
        todo += successors(plan, plan.steps[sid])
    return seen


def _spinning_cycles(plan: Plan, reachable: set[str]) -> list[Step]:
    """Steps on a cycle made only of steps that never wait (Tarjan's SCCs over non-waiting steps).

    Iterative: a 5,000-step chain of `say` steps would overflow Python's recursion limit."""
    nodes = {s for s in reachable if not plan.steps[s].verb.waits()}
    graph = {s: [t for t in successors(plan, plan.steps[s]) if t in nodes] for s in nodes}
    order = {sid: i for i, sid in enumerate(plan.steps)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[Step] = []
    for root in sorted(nodes, key=order.__getitem__):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = len(index)
                stack.append(v)
                on.add(v)
            elif (child := graph[v][i - 1]) in on:  # back from a child: take its low-link
                low[v] = min(low[v], low[child])
            if i < len(graph[v]):
                w = graph[v][i]
                work.append((v, i + 1))
                if w not in index:
                    work.append((w, 0))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in graph[v]:
                    out.append(plan.steps[min(comp, key=order.__getitem__)])
    return sorted(out, key=lambda st: order[st.id])


def check_paths(
    paths: Iterable[Path],
    known_queues: Iterable[str] | None = None,
    allowed_bases: Iterable[str] | None = None,
) -> list[Diagnostic]:
    """Check dialplan files; never raises for bad content: everything becomes a diagnostic.

    ``known_queues``: the queue names the admin configuration maps to SIP URIs (None: only the
    dialplan's own `queues:` list is checked). ``allowed_bases``: the base URLs tools may call
    (None: not checked)."""
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
        diags += check_plan(plan, known_queues, allowed_bases)
    return diags
