"""Reloading a dialplan file: validated first, the last good version stays when the new one is broken."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.versions import PlanFile, VersionError

GOOD = "id: r\nversion: {v}\nsteps:\n  a: {{hangup: 'v{v}'}}\n"


def test_reload_keeps_the_last_good_version(write: Callable[[str, str], Path]) -> None:
    path = write("r.yaml", GOOD.format(v=1))
    source = PlanFile(path)
    first = source.plan
    running = Interpreter(first)  # a call in progress holds its plan
    write("r.yaml", "id: r\nversion: 2\nsteps:\n  a: {goto: nowhere}\n")
    problems = source.reload()
    assert "does not exist" in str(problems[0]) and source.plan is first
    write("r.yaml", "id: r\nversion: [broken\n")
    assert source.reload()[0].severity == "error" and source.plan is first
    write("r.yaml", GOOD.format(v=3))
    assert source.reload() == [] and source.plan.version == 3
    assert running.plan is first and first.ref.startswith("r@1#")


def test_a_file_that_was_never_good_says_why(write: Callable[[str, str], Path]) -> None:
    with pytest.raises(VersionError, match="no good version yet"):
        _ = PlanFile(write("r.yaml", "id: r\n")).plan


def test_a_new_process_serves_the_last_good_version_kept_on_disk(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """Each call's worker is a fresh process: it must not meet a file that was broken after the
    last good load as a blank; it serves the version kept beside the store."""
    keep = tmp_path / "keep"
    path = write("r.yaml", GOOD.format(v=1))
    assert PlanFile(path, keep=keep).plan.version == 1
    write("r.yaml", "id: r\nversion: 2\nsteps:\n  a: {sya: hi}\n")
    fresh = PlanFile(path, keep=keep)
    problems = fresh.reload()
    assert "unknown verb 'sya'" in str(problems[0]) and fresh.plan.version == 1
    write("r.yaml", GOOD.format(v=3))
    assert PlanFile(path, keep=keep).plan.version == 3


def test_a_broken_subflow_keeps_the_last_good_version(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    keep = tmp_path / "keep"
    sub = "id: s\nversion: 1\nkind: subflow\nsteps:\n  ask: {say: Hi}\n  back: {return: {}}\n"
    write("s.yaml", sub)
    path = write("m.yaml", "id: m\nversion: 1\nsteps:\n  v: {subflow: s.yaml}\n  e: {hangup: {}}\n")
    good = PlanFile(path, keep=keep).plan
    write("s.yaml", sub.replace("return", "retrun"))
    fresh = PlanFile(path, keep=keep)
    assert fresh.reload() and fresh.plan.content_hash == good.content_hash


def test_calls_get_the_last_good_version_of_their_routed_file(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    from voicebot.callworker.params import CallWorkerParams
    from voicebot.callworker.plans import plan_for_call

    params = CallWorkerParams(dialplan_store=tmp_path / "store")
    path = write("r.yaml", GOOD.format(v=1))
    assert plan_for_call(params, str(path), "c1").id == "r"
    write("r.yaml", "id: r\nversion: 2\nsteps:\n  a: {goto: nowhere}\n")
    plan = plan_for_call(params, str(path), "c2")
    assert plan.id == "r" and plan.version == 1
    never = write("n.yaml", "id: n\nversion: 1\nsteps:\n  a: {goto: nowhere}\n")
    assert plan_for_call(params, str(never), "c3").id == "builtin"
