"""The admin tools: every shipped dialplan checks clean and passes its own conversation tests;
chat and the test runner report what happened, and failures point at the test file's line."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.cli import main
from voicebot.dialplan.chat import run_chat
from voicebot.dialplan.check import check_paths
from voicebot.dialplan.convtest import run_tests
from voicebot.dialplan.events import AgentTurn
from voicebot.dialplan.plan import parse

REPO = Path(__file__).resolve().parents[3]
PLANS = sorted(p for p in (REPO / "dialplans").glob("*.yaml") if not p.name.endswith(".test.yaml"))
SUBFLOWS = sorted((REPO / "dialplans" / "subflows").glob("*.yaml"))


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.name)
def test_shipped_dialplans_check_clean_and_pass_their_conversations(plan: Path) -> None:
    assert [str(d) for d in check_paths([plan], ["sales", "support", "billing"])] == []
    outcomes = run_tests(plan)
    assert outcomes and all(not o.failures for o in outcomes), [str(d) for o in outcomes for d in o.failures]


@pytest.mark.parametrize("subflow", SUBFLOWS, ids=lambda p: p.name)
def test_shipped_subflows_check_clean_on_their_own(subflow: Path) -> None:
    assert [str(d) for d in check_paths([subflow])] == []


def test_chat_shows_prompts_actions_and_variables() -> None:
    plan = parse((REPO / "dialplans" / "example.yaml").read_bytes(), "example.yaml")
    lines: list[str] = []
    assert run_chat(plan, ["", "#2"], lines.append, today="2026-11-24") == 0
    assert lines[2] == "bot> Hello, this is voicebot."
    assert any("[listening: menu, 6 s" in line for line in lines)
    assert "     [transfer to queue 'support', reason '']" in lines
    assert "     vars: transfer_status='ok', transfer_reason=''" in lines
    assert lines[-1] == "[call over: transferred]"


def test_chat_answers_agent_steps_typed_or_by_the_llm() -> None:
    plan = parse((REPO / "dialplans" / "assistant.yaml").read_bytes(), "assistant.yaml")
    lines: list[str] = []
    run_chat(plan, [">Hello, how can I help?", "when do you open?", ">"], lines.append)
    assert "bot> Hello, how can I help?" in lines
    assert "bot> Let me put you through to a colleague." in lines  # `>` alone: the LLM failed
    asked: list[int] = []

    def llm(turn: AgentTurn) -> str | None:  # stands in for the configured LLM (pure-logic test)
        asked.append(len(turn.messages))
        return f"Reply {len(asked)}."

    lines = []
    run_chat(plan, ["hi", "bye"], lines.append, llm=llm)
    assert asked == [0, 2, 4] and "bot> Reply 3." in lines


def test_chat_masks_sensitive_values(tmp_path: Path) -> None:
    plan = parse(
        "id: c\nversion: 1\nsteps:\n  p: {collect: {prompt: PIN?, into: pin, kind: digits, max_digits: 4,"
        " sensitive: true}}\n  e: {hangup: {}}\n"
    )
    lines: list[str] = []
    run_chat(plan, ["#4719"], lines.append)
    assert "     vars: pin='****', pin_via='keys'" in lines and not any("4719" in line for line in lines)


def test_failing_conversation_points_at_the_line(tmp_path: Path) -> None:
    plan = tmp_path / "p.yaml"
    plan.write_bytes((REPO / "dialplans" / "example.yaml").read_bytes())
    (tmp_path / "p.test.yaml").write_text(
        "tests:\n  - name: wrong queue\n    conversation:\n"
        "      - keys: '1'\n      - expect_transfer: support\n"
    )
    (outcome,) = run_tests(plan)
    (failure,) = outcome.failures
    assert str(failure).endswith(
        "p.test.yaml:5:9: error: wrong queue: expected a transfer to 'support'; got 'sales'"
    )
    assert main(["dialplan", "test", str(plan)]) == 1


def test_missing_test_file_is_an_error(tmp_path: Path) -> None:
    plan = tmp_path / "q.yaml"
    plan.write_bytes((REPO / "dialplans" / "example.yaml").read_bytes())
    (outcome,) = run_tests(plan)
    assert "cannot read" in outcome.failures[0].message


def test_yaml_traps_in_conversation_tests_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "y.yaml"
    plan.write_bytes((REPO / "dialplans" / "store_hours.yaml").read_bytes())
    (tmp_path / "y.test.yaml").write_text(
        "tests:\n  - conversation:\n      - keys: '2'\n      - caller: yes\n"
    )
    main(["dialplan", "test", str(plan)])
    assert "y.test.yaml:4:17: warning: unquoted 'yes' is read as True" in capsys.readouterr().out


def test_graph_has_every_step_and_edge(capsys: pytest.CaptureFixture[str]) -> None:
    example = str(REPO / "dialplans" / "example.yaml")
    assert main(["dialplan", "graph", example]) == 0
    out = capsys.readouterr().out
    assert out.startswith("flowchart TD") and '  main_menu -->|"2/support/help"| to_support' in out
    assert "  sorry --> main_menu" in out and '  to_sales -->|"transfer failed"| sorry' in out
    assert main(["dialplan", "graph", example, "--format", "dot"]) == 0
    assert '"greeting" -> "main_menu"' in capsys.readouterr().out
