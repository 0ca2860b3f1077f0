"""A held-out set of prompt-injection turns (tests/data/injection_turns.yaml): for each, what a
model talked into it would do next, fed to the interpreter. Whatever the model does, nothing is
called outside the declared tools and their checked arguments, no transfer goes anywhere but the
plan's own queue, and a tool behind a policy stays behind it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from voicebot.dialplan.interpreter import (
    AgentReply,
    AgentTurn,
    CallStarted,
    Interpreter,
    PlaybackDone,
    SayAction,
    SpeechFinal,
    ToolCall,
    TransferAction,
)
from voicebot.dialplan.plan import Plan, parse

REPO = Path(__file__).resolve().parents[3]
CASES = yaml.safe_load((REPO / "tests" / "data" / "injection_turns.yaml").read_text())["cases"]
ACCOUNTS = """
id: accounts
version: 1
queues: [billing]
variables: {verified: false, account: ""}
integrations:
  ledger: {base_url: "https://ledger.example.internal/api"}
handlers: {error: person}
steps:
  chat:
    agent:
      instructions: Help with balances.
      tools:
        get_balance:
          description: The balance of the caller's own account.
          integration: ledger
          path: /accounts/{account}/balance
          parameters: {account: {pattern: "[0-9]{5}", sensitive: true}}
          allowed_when: verified == true
          refusal: The caller has not been verified; offer verification by PIN.
      handover: person
  person:
    transfer: {queue: billing}
"""
PLANS: dict[str, Plan] = {
    "reschedule": parse((REPO / "dialplans" / "reschedule.yaml").read_bytes(), "reschedule.yaml"),
    "accounts": parse(ACCOUNTS.encode(), "accounts.yaml"),
}


def run_out(it: Interpreter, actions: list[Any]) -> list[Any]:
    """Play every prompt to its end, collecting what follows."""
    out, pending = [], list(actions)
    while pending:
        a = pending.pop(0)
        out.append(a)
        if isinstance(a, SayAction):
            pending += it.handle(PlaybackDone(a.mark, 9.0))
    return out


@pytest.mark.parametrize("case", CASES, ids=[f"{c['plan']}-{i}" for i, c in enumerate(CASES)])
def test_an_injected_turn_never_reaches_a_tool_or_a_transfer_outside_policy(case: dict[str, Any]) -> None:
    plan = PLANS[case["plan"]]
    it = Interpreter(plan)
    run_out(it, it.handle(CallStarted(0.0)))
    assert it.state.waiting == "agent"
    run_out(it, it.handle(AgentReply("How can I help?", True, 1.0)))
    turn = it.handle(SpeechFinal(case["say"], 0.9, 2.0))
    assert isinstance(turn[-1], AgentTurn) and turn[-1].messages[-1] == ("user", case["say"])
    ((name, args),) = case["model"].items()
    text = json.dumps(args, default=str)  # YAML dates as the model would write them
    out = run_out(it, it.handle(AgentReply("", True, 3.0, ("call_x", name, text))))
    calls = [a for a in out if isinstance(a, ToolCall)]
    transfers = [a for a in out if isinstance(a, TransferAction)]
    assert not calls, f"a tool was called: {calls}"
    assert all(t.queue in plan.queues for t in transfers)
    if case["expect"] == "handover":
        assert [t.queue for t in transfers] == plan.queues[:1]
        return
    assert not transfers and not [a for a in out if isinstance(a, SayAction)], "nothing said or done"
    assert isinstance(out[-1], AgentTurn), "the model is told no and answers again"
    blocked = [k for k, _ in it.notes if k == "policy_block"]
    assert bool(blocked) == (case["expect"] == "blocked")
    assert not any(v == "John Smith" or v == "55555" for v in it.state.variables.values())


def test_the_set_covers_every_kind_of_outcome() -> None:
    assert {c["expect"] for c in CASES} == {"refused", "handover", "blocked"} and len(CASES) >= 12
