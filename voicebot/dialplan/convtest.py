"""Conversation tests written next to a dialplan (`example.yaml` -> `example.test.yaml`).

tests:
  - name: sales by voice
    conversation:
      - expect_say: Hello            # a bot prompt of the latest turn contains this
      - caller: I would like sales   # or `keys: "12#"`, or `silence: true`
      - expect_transfer: sales
  - name: queue busy
    transfers_succeed: false         # also `today: 2026-12-01` for "tomorrow" in date answers
    conversation: [...]              # also: expect_hangup: completed, expect_variable: {pin: "4719"}
                                     # agent steps: expect_agent: "order", agent_replies: "Hi!",
                                     # agent_fails: down, agent_calls: {tool: {arg: value}}
                                     # callbacks: expect_callback: {number: "+1...", time: "15:00"};
                                     # a test of the call back: `entry: step` + `variables: {...}`
                                     # (also `callbacks_succeed: false`)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicebot.dialplan.driver import Driver, Turn
from voicebot.dialplan.plan import Plan, parse
from voicebot.dialplan.yamlsafe import Diagnostic, YamlError, load


@dataclass(frozen=True)
class Outcome:
    name: str
    failures: list[Diagnostic]
    warnings: list[Diagnostic] = field(default_factory=list)


def tests_file(plan_path: Path) -> Path:
    return plan_path.with_name(plan_path.stem + ".test.yaml")


def run_tests(plan_path: Path) -> list[Outcome]:
    path = tests_file(plan_path)
    try:
        plan = parse(plan_path.read_bytes(), str(plan_path))
        loaded = load(path.read_bytes(), str(path))
    except YamlError as exc:
        return [Outcome("(load)", exc.diagnostics)]
    except OSError as exc:
        return [Outcome("(load)", [Diagnostic(str(path), 1, 1, "error", f"cannot read: {exc.strerror}")])]
    tests = (loaded.data or {}).get("tests") if isinstance(loaded.data, dict) else None
    if not isinstance(tests, list) or not tests:
        return [
            Outcome(
                "(load)", [Diagnostic(str(path), 1, 1, "error", "expected `tests:` with a list of tests")]
            )
        ]
    outcomes = [_run_one(plan, t, i, str(path), loaded.where) for i, t in enumerate(tests)]
    warnings = loaded.warnings_except(lambda _: False)
    if warnings:
        # e.g. `caller: yes` is the boolean true in YAML 1.1: the test would say "True"
        outcomes.insert(0, Outcome("(yaml)", [], warnings))
    return outcomes


def _run_one(plan: Plan, test: Any, index: int, file: str, where: Any) -> Outcome:
    name = str(test.get("name", f"test {index + 1}")) if isinstance(test, dict) else f"test {index + 1}"
    failures: list[Diagnostic] = []

    def fail(j: int, message: str) -> None:
        line, col = where(("tests", index, "conversation", j))
        failures.append(Diagnostic(file, line, col, "error", f"{name}: {message}"))

    if not isinstance(test, dict) or not isinstance(test.get("conversation"), list):
        fail(0, "needs a `conversation` list")
        return Outcome(name, failures)
    driver = Driver(
        plan,
        bool(test.get("transfers_succeed", True)),
        str(test.get("today") or ""),
        bool(test.get("callbacks_succeed", True)),
    )
    kept = test.get("variables")
    turn = driver.start(str(test.get("entry") or ""), kept if isinstance(kept, dict) else {})
    for j, entry in enumerate(test["conversation"]):
        if not isinstance(entry, dict) or len(entry) != 1:
            fail(j, "each conversation entry is one `key: value`")
            continue
        ((key, value),) = entry.items()
        if key == "leave_message":
            if not turn.recording:
                fail(j, "the bot is not recording")
                continue
            turn = driver.recording_done(float(value))
        elif key in ("agent_replies", "agent_fails"):
            if turn.agent is None:
                fail(j, "no LLM turn is waiting for a reply")
                continue
            turn = driver.agent_reply(str(value) if key == "agent_replies" else "", key == "agent_replies")
        elif key == "agent_calls":
            # the LLM asks for a tool: `agent_calls: {move_appointment: {booking_ref: AB12CD}}`
            if turn.agent is None:
                fail(j, "no LLM turn is waiting for a reply")
                continue
            if not isinstance(value, dict) or len(value) != 1:
                fail(j, "agent_calls is one `tool_name: {arguments}`")
                continue
            ((tool, args),) = value.items()
            turn = driver.agent_reply("", True, (f"call_{j}", str(tool), json.dumps(args or {}, default=str)))
        elif key in ("tool_returns", "tool_fails"):
            if turn.tool is None:
                fail(j, "no tool call is waiting for a result")
                continue
            turn = driver.tool_result(key == "tool_returns", value)
        elif key in ("caller", "keys", "silence"):
            if driver.ended:
                fail(j, f"the call is already over ({driver.it.state.disposition}); the caller cannot act")
                break
            turn = (
                driver.say(str(value))
                if key == "caller"
                else driver.press(str(value))
                if key == "keys"
                else driver.silence()
            )
        else:
            problem = _expect(key, value, turn, driver)
            if problem:
                fail(j, problem)
    return Outcome(name, failures)


def _expect(key: str, value: Any, turn: Turn, driver: Driver) -> str | None:
    if key == "expect_say":
        return (
            None
            if any(str(value).lower() in s.lower() for s in turn.said)
            else f"expected the bot to say {value!r}; it said {turn.said}"
        )
    if key == "expect_transfer":
        return _expect_transfer(value, turn)
    if key == "expect_hangup":
        return None if turn.hangup == value else f"expected hangup {value!r}; got {turn.hangup!r}"
    if key == "expect_tool" and isinstance(value, dict):
        call = turn.tool
        if call is None:
            return "expected a tool call; there was none"
        want, have = value.get("integration"), call.integration
        if want and want != have:
            return f"expected a call to {want!r}; got {have!r}"
        part = str(value.get("url_contains", ""))
        return None if part in call.url else f"expected the URL to contain {part!r}; it is {call.url!r}"
    if key == "expect_callback" and isinstance(value, dict):
        cb = turn.callback
        if cb is None:
            return "expected a callback to be booked; there was none"
        booked: dict[str, Any] = {"number": cb.number, "date": cb.date, "time": cb.time, "entry": cb.entry}
        booked.update(cb.variables)
        wrong = {k: booked.get(k) for k, v in value.items() if str(booked.get(k)) != str(v)}
        return None if not wrong else f"expected the callback {value}; it has {wrong}"
    if key == "expect_agent":
        # `expect_agent: true`, or text the LLM is given (in its instructions or the conversation)
        if turn.agent is None:
            return "expected an LLM turn; there was none"
        given = " ".join([turn.agent.instructions, *(text for _, text in turn.agent.messages)]).lower()
        return None if value is True or str(value).lower() in given else f"the LLM was not given {value!r}"
    if key == "expect_variable" and isinstance(value, dict):
        actual = driver.it.state.variables
        wrong = {k: actual.get(k) for k, v in value.items() if actual.get(k) != v}
        return None if not wrong else f"expected variables {value}; they are {wrong}"
    return (
        f"unknown conversation entry {key!r} (caller, keys, silence, tool_returns, tool_fails, "
        "agent_replies, agent_fails, agent_calls, leave_message, expect_say, expect_transfer, expect_hangup, "
        "expect_variable, expect_tool, expect_agent, expect_callback)"
    )


def _expect_transfer(value: Any, turn: Turn) -> str | None:
    """``expect_transfer: sales`` or ``{queue: billing, reason: ..., context: {Account: "47192"}}``."""
    want = value if isinstance(value, dict) else {"queue": value}
    got = turn.transfer_action
    if got is None or got.queue != want.get("queue", got.queue):
        return f"expected a transfer to {want.get('queue')!r}; got {turn.transfer!r}"
    if "reason" in want and str(want["reason"]) not in got.reason:
        return f"expected the transfer reason to contain {want['reason']!r}; it is {got.reason!r}"
    wrong = {k: got.headers.get(k) for k, v in (want.get("context") or {}).items() if got.headers.get(k) != v}
    return f"expected transfer context {want['context']}; it has {got.headers}" if wrong else None
