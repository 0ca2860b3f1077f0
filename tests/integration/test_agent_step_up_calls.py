"""Step-up verification on a real call: the model asks to pay a bill (a scripted OpenAI-compatible
server on loopback), the policy wants a verified caller, so the bot asks for the PIN (keys); a real
billing HTTP server checks it; back at the agent the same payment is read back, the caller presses 1,
and the payment is made once. The PIN never reaches the model, the logs or the call record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.jsonapi import JsonApi, Request
from support.peers import call_bot
from support.scripted_llm import Reply, serve

pytestmark = pytest.mark.integration
PIN = "4719"

PLAN = """\
id: pay
version: 1
variables: {verified: false}
integrations:
  billing: {base_url: "@BASE@"}
queues: [billing]
steps:
  talk:
    agent:
      instructions: Help the caller pay their open bill.
      tools:
        pay_bill:
          description: Pay the open bill with the card on file.
          integration: billing
          method: POST
          path: /pay
          body: {amount: "{amount}"}
          parameters:
            amount: {type: number, minimum: 1, maximum: 500}
          result: {receipt: receipt}
          allowed_when: verified == true
          verify: pin
          refusal: The caller could not be verified.
          confirm: Shall I pay {amount} dollars now?
      handover: person
      on_error: person
  pin:
    collect:
      prompt: For your security, please key in your PIN, then press hash.
      into: pin
      kind: digits
      min_digits: 4
      max_digits: 4
      sensitive: true
  check:
    tool:
      integration: billing
      method: POST
      path: /verify
      body: {pin: "{pin}"}
      result: {verified: verified}
      retry_safe: true
      on_error: person
    next: talk
  person:
    transfer: {queue: billing, announce: Let me put you through to a person.}
"""


def pay_model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        result = json.loads(last["content"])
        if result.get("ok"):
            return Reply(text=f"Paid. Your receipt is {result.get('receipt')}.")
        return Reply(text="I could not do that.")
    if last.get("role") == "user" and not any(m.get("role") == "tool" for m in messages):
        return Reply(tool="pay_bill", arguments={"amount": 42})
    if last.get("role") == "user":
        return Reply(text="Anything else?")
    return Reply(text="How can I help with your bill?")


def _billing(request: Request) -> dict[str, Any]:
    if request.path.endswith("/verify"):
        return {"verified": (request.body or {}).get("pin") == PIN}
    return {"receipt": "R-1001"}


@pytest.fixture
def billing() -> Iterator[JsonApi]:
    with JsonApi(_billing, "billing") as api:
        yield api


def test_the_pin_is_asked_checked_by_the_backend_then_the_same_payment_is_read_back_and_made_once(
    voicebot: Any, tmp_path: Path, billing: JsonApi
) -> None:
    plan = tmp_path / "pay.yaml"
    base = f"{billing.url}/api"
    plan.write_text(PLAN.replace("@BASE@", base))
    with serve(pay_model) as llm:
        server = voicebot(
            VOICEBOT_CALL__LOGIC="dialplan",
            VOICEBOT_ROUTES=json.dumps([{"match": "*", "dialplan": str(plan)}]),
            VOICEBOT_TOOLS_ALLOW=json.dumps([base]),
            VOICEBOT_LLM__MODEL="openai/pay",
            VOICEBOT_LLM__API_BASE=llm.api_base,
        )
        # the model's question ~2 s; key 5 asks to pay; the PIN prompt ~4 s; the read-back ~3 s
        caller = call_bot(tmp_path, server.port, "--dtmf", "5@4", f"{PIN}#@9", "1@16", "--duration", "26")
        caller.result(timeout=60)
        (rec,) = server.records(expect=1)
        model_saw = json.dumps(llm.requests)
    events = rec["events"]
    plays = [e["text"] for e in events if e["kind"] == "play"]
    assert "For your security, please key in your PIN, then press hash." in plays
    assert billing.paths == ["/api/verify", "/api/pay"], billing.seen
    assert billing.seen[1].body == {"amount": 42}
    readback = plays.index("Shall I pay 42 dollars now?")
    assert plays.index("Paid. Your receipt is R-1001.") > readback
    outcomes = [e["outcome"] for e in events if e["kind"] == "agent_tool"]
    assert outcomes == ["step_up", "accepted", "confirmed"], outcomes
    assert "no_match" not in [e["kind"] for e in events], "the hash after the PIN answers nothing"
    assert PIN not in model_saw, "the PIN never reaches the model"
    values = [v for e in events for v in e.values() if isinstance(v, str)]
    assert not [v for v in values if PIN in v], "the PIN is not in the call's record"
    assert f"pin={PIN}" not in server.log() and f'"pin": "{PIN}"' not in server.log()
