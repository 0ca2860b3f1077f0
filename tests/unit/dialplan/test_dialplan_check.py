"""The checker, rule by rule, on small plans; and the shipped example."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.cli import main
from voicebot.dialplan.check import check_paths

REPO = Path(__file__).resolve().parents[3]
HEAD = "id: t\nversion: 1\nqueues: [sales]\nsteps:\n"


def check(tmp_path: Path, steps: str, head: str = HEAD, queues: list[str] | None = None) -> list[str]:
    path = tmp_path / "plan.yaml"
    path.write_text(head + steps)
    return [str(d).replace(str(path), "plan.yaml") for d in check_paths([path], queues)]


def test_the_shipped_example_is_clean() -> None:
    assert check_paths([REPO / "dialplans" / "example.yaml"], ["sales", "support"]) == []


def test_unknown_verb_and_field_suggest_the_right_one(tmp_path: Path) -> None:
    assert check(tmp_path, "  a:\n    sya: Hi\n") == [
        "plan.yaml:6:5: error: unknown verb 'sya'; did you mean 'say'?"
    ]
    out = check(tmp_path, "  a:\n    hangup: Bye\n", head=HEAD.replace("queues", "queus"))
    assert out == ["plan.yaml:3:1: error: unknown field 'queus'; did you mean 'queues'?"]


def test_missing_target(tmp_path: Path) -> None:
    out = check(tmp_path, "  a:\n    goto: byee\n  bye:\n    hangup: Bye\n")
    assert (
        out[0] == "plan.yaml:5:3: error: step 'a' goes to 'byee', which does not exist; did you mean 'bye'?"
    )


def test_unreachable_step_is_a_warning(tmp_path: Path) -> None:
    out = check(tmp_path, "  a:\n    hangup: Bye\n  b:\n    hangup: Never\n")
    assert out == ["plan.yaml:7:3: warning: step 'b' can never be reached"]


def test_loop_that_never_waits_for_the_caller(tmp_path: Path) -> None:
    out = check(tmp_path, "  a:\n    say: Hi\n    next: b\n  b:\n    goto: a\n")
    assert out == ["plan.yaml:5:3: error: step 'a' is in a loop that never waits for the caller"]
    menu = "  a:\n    menu: {prompt: Pick, options: [{keys: '1', goto: b}], no_match: a}\n  b:\n    goto: a\n"
    assert check(tmp_path, menu) == []  # the menu waits: not a spin


def test_path_that_ends_without_hangup_or_transfer(tmp_path: Path) -> None:
    out = check(tmp_path, "  a:\n    say: Hi\n")
    assert out == ["plan.yaml:5:3: error: the call ends after step 'a' without a hangup or transfer"]


def test_queues_must_be_declared_and_configured(tmp_path: Path) -> None:
    out = check(tmp_path, "  a:\n    transfer: billing\n")
    assert out == ["plan.yaml:5:3: error: queue 'billing' is not declared in this dialplan's `queues`"]
    out = check(tmp_path, "  a:\n    transfer: sales\n", queues=["support"])
    assert out == [
        "plan.yaml:5:3: error: queue 'sales' is not configured by the admin (settings `queues`: support)"
    ]


def test_bad_parameters_point_at_the_field(tmp_path: Path) -> None:
    out = check(
        tmp_path,
        "  a:\n    collect: {prompt: 'PIN?', into: Pin, kind: digits, sensitiv: true}\n    next: b\n"
        "  b:\n    hangup: Bye\n",
    )
    assert any("into: String should match pattern" in o for o in out)
    assert any("unknown field 'sensitiv'; did you mean 'sensitive'?" in o for o in out)


def test_hostile_files_become_diagnostics(tmp_path: Path) -> None:
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)
    )
    (tmp_path / "bomb.yaml").write_text(bomb)
    (tmp_path / "evil.yaml").write_text("id: !!python/object/apply:os.system [id]\n")
    diags = check_paths([tmp_path / "bomb.yaml", tmp_path / "evil.yaml", tmp_path / "missing.yaml"])
    assert [d.severity for d in diags] == ["error"] * 3
    assert "billion laughs" in diags[0].message and "not allowed" in diags[1].message
    assert "cannot read" in diags[2].message


def test_cli_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = REPO / "dialplans" / "example.yaml"
    assert main(["dialplan", "check", str(good), "--queues", "sales,support"]) == 0
    (tmp_path / "bad.yaml").write_text(HEAD + "  a:\n    say: Hi\n")
    assert main(["dialplan", "check", str(tmp_path / "bad.yaml")]) == 1
    assert "without a hangup or transfer" in capsys.readouterr().out
    assert main(["dialplan", "schema"]) == 0


def test_undefined_variables_are_reported(tmp_path: Path) -> None:
    steps = (
        "  a:\n    branch: {cases: [{when: 'balance > 10', goto: b}], default: b}\n"
        "  b:\n    hangup: Your balance is {balance}.\n"
    )
    out = check(tmp_path, steps)
    hint = "warning: variable 'balance' is never set (declare it in `variables`, or collect/set it)"
    assert out == [f"plan.yaml:5:3: {hint}", f"plan.yaml:7:3: {hint}"]
    assert (
        check(tmp_path, steps, head=HEAD + "") != []
        and check(tmp_path, steps, head=HEAD.replace("steps:", "variables: {balance: 0}\nsteps:")) == []
    )


def test_unsafe_conditions_are_errors(tmp_path: Path) -> None:
    out = check(
        tmp_path,
        "  a:\n    branch: {cases: [{when: '__import__(\"os\")', goto: b}], default: b}\n"
        "  b:\n    hangup: Bye\n",
    )
    assert len(out) == 1 and "Call is not allowed in a condition" in out[0]


def test_handler_targets_must_exist(tmp_path: Path) -> None:
    out = check(
        tmp_path, "  a:\n    hangup: Bye\n", head=HEAD.replace("steps:", "handlers: {agent: persn}\nsteps:")
    )
    assert out == ["plan.yaml:4:12: error: handler 'agent' goes to 'persn', which does not exist"]


def test_cli_takes_a_directory_and_skips_conversation_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = REPO / "dialplans"
    assert main(["dialplan", "check", str(shipped)]) == 0
    count = len([p for p in shipped.glob("*.yaml") if not p.name.endswith(".test.yaml")])
    assert f"{count} file(s), 0 error(s)" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text(HEAD + "  a:\n    say: Hi\n")
    (tmp_path / "bad.test.yaml").write_text("not: a plan\n")
    assert main(["dialplan", "check", str(tmp_path)]) == 1
    assert "1 file(s), 1 error(s)" in capsys.readouterr().err


def test_a_callback_keeps_neither_a_pin_nor_what_the_call_back_sets_itself(tmp_path: Path) -> None:
    pin = (
        "  a:\n    collect: {prompt: PIN?, into: pin, kind: digits, sensitive: true}\n"
        "  b:\n    callback: {after_s: 60, entry: c, keep: [pin]}\n"
        "  c:\n    hangup: Bye\n"
    )
    errors = [d for d in check(tmp_path, pin) if ": error: " in d]
    assert errors and "'pin' cannot be kept" in errors[0], errors
    own = check(
        tmp_path, "  b:\n    callback: {after_s: 60, entry: c, keep: [caller]}\n  c:\n    hangup: Bye\n"
    )
    assert any("'caller' belongs to the call back itself" in d for d in own), own
