"""Subflows: inlined per call site, `return` goes on below the call, errors point into the sub-file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from voicebot.dialplan.check import check_paths
from voicebot.dialplan.events import CallStarted, Dtmf, PlaybackDone, SayAction
from voicebot.dialplan.interpreter import Interpreter
from voicebot.dialplan.plan import parse
from voicebot.dialplan.yamlsafe import YamlError

SUB = (
    "id: sub\nversion: 1\nkind: subflow\nvariables: {n: 0}\nsteps:\n"
    "  ask: {collect: {prompt: 'Digit?', into: n, kind: digits, max_digits: 1}}\n  done: {return: {}}\n"
)
MAIN = (
    "id: main\nversion: 1\nsteps:\n  first: {subflow: sub/ask.yaml}\n  second: {subflow: sub/ask.yaml}\n"
    "  bye: {hangup: 'got {n}'}\n"
)


def run(plan_path: Path, keys: str) -> list[str]:
    it = Interpreter(parse(plan_path.read_bytes(), str(plan_path)))
    said: list[str] = []

    def feed(actions: list[object]) -> None:
        for a in actions:
            if isinstance(a, SayAction):
                said.append(a.text)
                feed(it.handle(PlaybackDone(a.mark, 0.0)))

    feed(it.handle(CallStarted(0.0)))
    for k in keys:
        feed(it.handle(Dtmf(k, 0.0)))
    return said


def test_subflow_runs_twice_and_returns_below_each_call(write: Callable[[str, str], Path]) -> None:
    write("sub/ask.yaml", SUB)
    main = write("main.yaml", MAIN)
    plan = parse(main.read_bytes(), str(main))
    assert list(plan.steps) == [
        "first",
        "second",
        "bye",
        "first/ask",
        "first/done",
        "second/ask",
        "second/done",
    ]
    assert plan.variables == {"n": 0}
    assert run(main, "47") == ["Digit?", "Digit?", "got 7"]
    assert check_paths([main]) == []


def test_subflow_content_changes_the_plan_hash(write: Callable[[str, str], Path]) -> None:
    write("sub/ask.yaml", SUB)
    main = write("main.yaml", MAIN)
    before = parse(main.read_bytes(), str(main)).content_hash
    write("sub/ask.yaml", SUB.replace("Digit?", "Key?"))
    assert parse(main.read_bytes(), str(main)).content_hash != before


def test_errors_inside_a_subflow_point_into_its_file(write: Callable[[str, str], Path]) -> None:
    sub = write("sub/ask.yaml", SUB.replace("kind: digits", "kind: digit"))
    main = write("main.yaml", MAIN)
    out = [str(d) for d in check_paths([main])]
    assert out[0] == f"{main}:4:3: error: subflow 'sub/ask.yaml' has errors (below)"
    assert out[1].startswith(f"{sub}:6:") and "kind" in out[1]


def test_a_subflow_file_checks_on_its_own(write: Callable[[str, str], Path]) -> None:
    assert check_paths([write("sub/ask.yaml", SUB)]) == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"main.yaml": "id: m\nversion: 1\nsteps:\n  a: {subflow: gone.yaml}\n"}, "cannot be read"),
        (
            {"main.yaml": "id: m\nversion: 1\nkind: subflow\nsteps:\n  a: {subflow: main.yaml}\n"},
            "more than 4",
        ),
        (
            {
                "o.yaml": "id: o\nversion: 1\nsteps:\n  h: {hangup: {}}\n",
                "main.yaml": "id: m\nversion: 1\nsteps:\n  a: {subflow: o.yaml}\n",
            },
            "'o.yaml' is not a subflow: give it `kind: subflow`",
        ),
        ({"main.yaml": "id: m\nversion: 1\nsteps:\n  a: {return: {}}\n"}, "`return` only ends a subflow"),
    ],
)
def test_subflow_mistakes(write: Callable[[str, str], Path], files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        write(name, text)
    with pytest.raises(YamlError) as info:
        main = write("main.yaml", files["main.yaml"])
        parse(main.read_bytes(), str(main))
    assert message in str(info.value)


def test_a_subflow_returning_at_the_end_of_the_plan_is_reported(write: Callable[[str, str], Path]) -> None:
    write("sub/ask.yaml", SUB)
    main = write("main.yaml", "id: m\nversion: 1\nsteps:\n  a: {subflow: sub/ask.yaml}\n")
    assert any("the call ends when the subflow returns to 'a'" in str(d) for d in check_paths([main]))
