"""Checker rules added with tools, subflows and YAML traps; hostile input never crashes or stalls."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from voicebot.cli import main
from voicebot.dialplan.check import check_paths
from voicebot.dialplan.yamlsafe import YamlError, load

TOOLS = (
    "id: t\nversion: 1\nintegrations:\n  crm:\n    base_url: https://crm.example/api\n"
    "    headers: {{Authorization: '{auth}'}}\nsteps:\n  a: {{tool: {{integration: crm}}}}\n"
    "  b: {{hangup: {{}}}}\n"
)


def lines(path: Path, queues: list[str] | None = None, bases: list[str] | None = None) -> list[str]:
    return [str(d).replace(str(path), "p.yaml") for d in check_paths([path], queues, bases)]


def test_tools_must_be_allowlisted_and_secrets_referenced(write: Callable[[str, str], Path]) -> None:
    good = write("p.yaml", TOOLS.format(auth="Bearer ${env:CRM_TOKEN}"))
    assert lines(good, bases=["https://crm.example"]) == []
    assert lines(good, bases=["https://other.example"]) == [
        "p.yaml:4:3: error: integration 'crm': https://crm.example/api is not under an allowlisted base "
        "(settings `tools_allow`)"
    ]
    leaked = write("p.yaml", TOOLS.format(auth="Bearer s3cr3t"))
    assert "holds a literal secret; write ${env:NAME}" in lines(leaked)[0]


def test_undeclared_integration_suggests_the_declared_one(write: Callable[[str, str], Path]) -> None:
    path = write("p.yaml", TOOLS.format(auth="x").replace("integration: crm}", "integration: crn}"))
    assert lines(path) == [
        "p.yaml:8:14: error: integration 'crn' is not declared under `integrations`; did you mean 'crm'?"
    ]


def test_unknown_field_and_comma_hint(write: Callable[[str, str], Path]) -> None:
    path = write("p.yaml", "id: t\nversion: 1\nsteps:\n  a: {hangup: {say: Sorry, we are closed}}\n")
    (msg,) = lines(path)
    assert "unknown field 'we are closed'" in msg and "put text with commas in quotes" in msg


def test_yes_no_words_warn_only_where_text_was_meant(write: Callable[[str, str], Path]) -> None:
    path = write(
        "p.yaml",
        "id: t\nversion: 1\nsettings: {barge_in: yes}\nsteps:\n"
        "  a: {say: {text: no, barge_in: off}}\n  b: {hangup: {}}\n",
    )
    assert lines(path) == [
        "p.yaml:5:13: error: text: Input should be a valid string",
        "p.yaml:5:19: warning: unquoted 'no' is read as False; quote it if you meant text",
    ]  # barge_in: yes / off are what the admin meant: no warning there


def test_sexagesimal_and_leading_zero_traps() -> None:
    out = load("a: 10:30\nb: 08\nc: '10:30'\n")
    assert out.data == {"a": 630, "b": "08", "c": "10:30"}
    assert [w.message for w in out.warnings] == [
        "unquoted '10:30' is read as the number 630 (base 60); quote times like '10:30'",
        "unquoted '08' is read as text here, but the number 8 in YAML 1.2 editors; quote it",
    ]


def test_undefined_variable_suggests_a_close_name(write: Callable[[str, str], Path]) -> None:
    path = write(
        "p.yaml",
        "id: t\nversion: 1\nsteps:\n  a: {collect: {prompt: A?, into: account}}\n"
        "  b: {hangup: 'Bye {acount}'}\n",
    )
    assert lines(path) == [
        "p.yaml:5:3: warning: variable 'acount' is never set (declare it in `variables`, or collect/set it); "
        "did you mean 'account'?"
    ]


def test_a_5000_step_chain_checks_without_recursion_trouble(write: Callable[[str, str], Path]) -> None:
    steps = "".join(f"  s{i}: {{say: Step {i}.}}\n" for i in range(5000))
    loop = write("p.yaml", "id: t\nversion: 1\nsteps:\n" + steps + "  back: {goto: s0}\n")
    t0 = time.perf_counter()
    out = lines(loop)
    assert time.perf_counter() - t0 < 2.0
    assert out == ["p.yaml:4:3: error: step 's0' is in a loop that never waits for the caller"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: " + "[" * 200_000 + "]" * 200_000, "nesting deeper than 40 levels"),
        ("a: " + "{a: " * 100_000 + "1" + "}" * 100_000, "nesting deeper than 40 levels"),
        ("a: &a {x: 1}\nb:\n  <<: *a\n", "merge keys (<<) are not supported"),
        ("a: *nowhere\n", "alias *nowhere has no anchor"),
        ("a: 1\n---\nb: 2\n", "one YAML document"),
        ("a: !!binary aGk=\n", "tag 'tag:yaml.org,2002:binary' is not allowed"),
        ("a: &x [*x, *x]\n", "an alias inside its own anchor"),
    ],
)
def test_hostile_yaml_is_refused_quickly(text: str, message: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(YamlError) as info:
        load(text, "h.yaml")
    assert message in str(info.value) and str(info.value).startswith("h.yaml:")
    assert time.perf_counter() - t0 < 1.0


def test_deep_nesting_does_not_crash_the_process(tmp_path: Path) -> None:
    # libyaml's own composer recurses per level and segfaults on this; ours must answer, in a
    # separate process so a regression fails this test instead of killing the test run.
    bomb = tmp_path / "deep.yaml"
    bomb.write_text("steps: " + "[" * 400_000 + "]" * 400_000)
    done = subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "dialplan", "check", str(bomb)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "nesting deeper than 40 levels" in done.stdout


def test_check_reads_queues_and_allowlist_from_the_admin_config(
    write: Callable[[str, str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write("p.yaml", "id: t\nversion: 1\nqueues: [vip]\nsteps:\n  a: {transfer: vip}\n")
    config = write("voicebot.yaml", "queues: {sales: 'sip:sales@127.0.0.1'}\n")
    assert main(["dialplan", "check", str(plan), "--config", str(config)]) == 1
    assert "queue 'vip' is not configured by the admin (settings `queues`: sales)" in capsys.readouterr().out
    assert main(["dialplan", "check", str(plan), "--queues", "vip"]) == 0


@pytest.mark.parametrize("steps", ["null", "{}", "[]", "3"])
def test_empty_or_wrong_steps_are_reported_not_raised(write: Callable[[str, str], Path], steps: str) -> None:
    # found by fuzzing: `steps: null` crashed the Plan constructor
    path = write("p.yaml", f"id: t\nversion: 1\nsteps: {steps}\n")
    assert lines(path) == ["p.yaml:3:1: error: steps must be a non-empty mapping of step id -> step"]
