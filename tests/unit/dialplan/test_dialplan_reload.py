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
