"""Step-up verification of an agent tool (pure): a call the policy does not allow yet sends the
caller through the tool's `verify` step (a PIN), and back at the agent the same call is checked
again: made (after the read-back) when the caller is now verified, refused once otherwise; the
conversation is kept across the detour and survives a worker restart in the middle of it."""

from __future__ import annotations

import json
from typing import Any

from voicebot.dialplan.check import check_plan
from voicebot.dialplan.interpreter import (
    AgentReply,
    AgentTurn,
    CallStarted,
    Dtmf,
    Interpreter,
    PlaybackDone,
    SayAction,
    State,
    ToolCall,
)
from voicebot.dialplan.plan import parse

PLAN_TEXT = """\
id: pay
version: 1
variables: {verified: false}
integrations:
  billing: {base_url: "https://billing.example.internal/api"}
steps:
  talk:
    agent:
      instructions: Help the caller pay their bill.
      tools:
        pay_bill:
          description: Pay the open bill with the card on file.
          integration: billing
          method: POST
          path: /pay
          parameters:
            amount: {type: number, minimum: 1, maximum: 500}
          allowed_when: verified == true
          verify: pin
          refusal: The caller could not be verified.
          confirm: Shall I pay {amount} dollars now?
      on_error: bye
  pin:
    collect:
      prompt: Please key in your PIN then hash.
      into: pin
      kind: digits
      min_digits: 4
      max_digits: 4
      sensitive: true
  check:
    branch:
      cases:
        - {when: 'pin == "4719"', goto: ok}
      default: talk
  ok:
    set: {values: {verified: true}}
    next: talk
  bye:
    hangup: Goodbye.
"""
PLAN = parse(PLAN_TEXT, "pay.yaml")


def said(actions: list[Any]) -> list[str]:
    return [a.text for a in actions if isinstance(a, SayAction)]


def keys(it: Interpreter, digits: str) -> list[Any]:
    out: list[Any] = []
    for d in digits:
        out += it.handle(Dtmf(d, 3.0))
    return out


def asked_to_pay(it: Interpreter) -> list[Any]:
    it.handle(CallStarted(0.0))
    out = it.handle(AgentReply("", True, 1.0, ("call_7", "pay_bill", json.dumps({"amount": 42}))))
    assert said(out) == ["Please key in your PIN then hash."]  # no read-back, nothing called yet
    return out


def test_a_tool_not_yet_allowed_asks_for_the_pin_then_goes_on_with_the_same_call() -> None:
    it = Interpreter(PLAN)
    asked_to_pay(it)
    assert any(k == "agent_tool" and d["outcome"] == "step_up" for k, d in it.notes)
    back = keys(it, "4719")
    assert said(back) == ["Shall I pay 42 dollars now?"]  # the call the model asked for, read back
    assert [m[0] for m in it.state.agent_messages] == ["tool_call"]  # the conversation was kept
    done = it.handle(Dtmf("1", 5.0))
    (call,) = [a for a in done if isinstance(a, ToolCall)]
    assert (call.method, call.url) == ("POST", "https://billing.example.internal/api/pay")
    assert it.state.variables["amount"] == 42
    assert it.state.agent_verify == ""


def test_a_wrong_pin_comes_back_refused_once_and_the_model_is_told() -> None:
    it = Interpreter(PLAN)
    asked_to_pay(it)
    back = keys(it, "0000")
    (turn,) = [a for a in back if isinstance(a, AgentTurn)]
    role, text = turn.messages[-1]
    assert role == "tool" and "not allowed: The caller could not be verified." in text
    assert not [a for a in back if isinstance(a, ToolCall)]
    assert any(k == "policy_block" for k, _ in it.notes)
    # The model asks again: this time the step-up is offered again (a new call), not a loop.
    again = it.handle(AgentReply("", True, 6.0, ("call_8", "pay_bill", json.dumps({"amount": 42}))))
    assert said(again) == ["Please key in your PIN then hash."]


def test_a_worker_restart_during_the_pin_keeps_the_pending_call() -> None:
    it = Interpreter(PLAN)
    asked_to_pay(it)
    state = State.model_validate_json(it.state.model_dump_json())
    resumed = Interpreter(PLAN, state)
    out = resumed.resume()
    assert said(out) == ["Please key in your PIN then hash."]
    assert said(keys(resumed, "4719")) == ["Shall I pay 42 dollars now?"]


def test_the_checker_follows_the_verify_step() -> None:
    assert [str(d) for d in check_plan(PLAN) if d.severity == "error"] == []
    broken = parse(PLAN_TEXT.replace("verify: pin", "verify: pinn"), "pay.yaml")
    assert any("goes to 'pinn', which does not exist" in str(d) for d in check_plan(broken))


def test_playback_marks_do_not_disturb_the_detour() -> None:
    it = Interpreter(PLAN)
    out = asked_to_pay(it)
    for a in out:
        if isinstance(a, SayAction):
            it.handle(PlaybackDone(a.mark, 1.5))
    assert it.state.step == "pin" and it.state.waiting == "input"
