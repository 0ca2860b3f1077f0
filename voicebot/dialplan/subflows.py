"""Inline `subflow` steps: the sub-dialplan's steps join the calling plan under ``<call site>/``.

A subflow is a dialplan file with ``kind: subflow``: its steps may ``return``, and it can be checked
on its own (a `return` then simply ends a path).

Ids stay absolute after inlining (``verify/ask_pin``, ``verify/inner/step``), so the checker, the
interpreter and the graph need no notion of scope. A subflow's ``return`` goes to the step after its
call site. Integrations, queues and starting variables of the subflow join the calling plan;
its settings and handlers do not (the calling plan's apply to the whole call).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

from voicebot.dialplan.plan import Plan, Step, parse
from voicebot.dialplan.verbs import Verb
from voicebot.dialplan.verbs.subflow import Return, Subflow
from voicebot.dialplan.yamlsafe import Diagnostic, YamlError

MAX_DEPTH = 4  # subflows calling subflows; deeper is almost surely a file including itself
# Fields of verb models (and their nested options/cases) that name steps.
TARGET_FIELDS = frozenset(
    {
        "goto",
        "step",
        "default",
        "no_match",
        "no_input",
        "on_failure",
        "on_error",
        "on_decline",
        "no_consent",
        "handover",
        "entry",
    }
)


def inline(plan: Plan, depth: int) -> Plan:
    """Replace each subflow call's target with the sub-dialplan's steps (parsed, checked, renamed)."""
    errors: list[Diagnostic] = []
    steps = dict(plan.steps)
    hashes = [plan.content_hash]
    includes: list[str] = []
    for step in plan.steps.values():
        if not isinstance(step.verb, Subflow):
            continue
        sub = _load(plan, step, depth, errors)
        if sub is None:
            continue
        hashes.append(sub.content_hash)
        includes += [sub.file, *sub.includes]
        cont = step.next or plan.after(step.id)
        for sub_step in sub.steps.values():
            moved = _moved(sub_step, step.id, cont)
            steps[moved.id] = moved
        entry = step.verb.model_copy()
        entry._entry = f"{step.id}/{sub.start}"
        steps[step.id] = dataclasses.replace(step, verb=entry)
        _merge(plan, sub, step, errors)
    if plan.kind != "subflow":
        for step in steps.values():
            if isinstance(step.verb, Return) and step.verb._to is None:
                errors.append(
                    _at(
                        step,
                        "`return` only ends a subflow (a file with `kind: subflow`); "
                        "use hangup, transfer or goto here",
                    )
                )
    if errors:
        raise YamlError(errors)
    if len(hashes) == 1:
        return plan
    combined = hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]
    unique = tuple(dict.fromkeys(includes))
    return dataclasses.replace(plan, steps=steps, content_hash=combined, includes=unique)


def _load(plan: Plan, step: Step, depth: int, errors: list[Diagnostic]) -> Plan | None:
    assert isinstance(step.verb, Subflow)
    path = Path(plan.file).parent / step.verb.file
    if depth >= MAX_DEPTH:
        errors.append(_at(step, f"subflows nested more than {MAX_DEPTH} deep (does {path} call itself?)"))
        return None
    try:
        sub = parse(path.read_bytes(), str(path), _depth=depth + 1)
    except OSError as exc:
        errors.append(_at(step, f"subflow file {str(path)!r} cannot be read: {exc.strerror}"))
        return None
    except YamlError as exc:
        errors.append(_at(step, f"subflow {step.verb.file!r} has errors (below)"))
        errors.extend(exc.diagnostics)
        return None
    if sub.kind != "subflow":
        errors.append(_at(step, f"{step.verb.file!r} is not a subflow: give it `kind: subflow`"))
        return None
    return sub


def _moved(step: Step, prefix: str, cont: str | None) -> Step:
    def rename(target: str) -> str:
        return f"{prefix}/{target}"

    verb = _renamed(step.verb, rename)
    if isinstance(verb, Return) and verb._to is None:
        verb._to = cont or ""  # the call site's way on ("" = none: the checker reports it)
    nxt = rename(step.next) if step.next else None
    return dataclasses.replace(step, id=rename(step.id), verb=verb, next=nxt)


def _renamed(model: Verb, rename: Callable[[str], str]) -> Verb:
    update: dict[str, object] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if name in TARGET_FIELDS and isinstance(value, str):
            update[name] = rename(value)
        elif isinstance(value, list) and value and isinstance(value[0], Verb):
            update[name] = [_renamed(v, rename) for v in value]
    copy = model.model_copy(update=update)
    if isinstance(copy, Subflow) and copy._entry:
        copy._entry = rename(copy._entry)
    if isinstance(copy, Return) and copy._to:
        copy._to = rename(copy._to)
    return copy


def _merge(plan: Plan, sub: Plan, step: Step, errors: list[Diagnostic]) -> None:
    for name, spec in sub.integrations.items():
        if plan.integrations.setdefault(name, spec) != spec:
            errors.append(_at(step, f"subflow declares integration {name!r} differently from this dialplan"))
    plan.queues += [q for q in sub.queues if q not in plan.queues]
    for name, value in sub.variables.items():
        plan.variables.setdefault(name, value)
    plan.warnings += sub.warnings


def _at(step: Step, message: str) -> Diagnostic:
    return Diagnostic(step.file, step.line, step.column, "error", message)
