"""Agent tools in the interpreter (pure): what the LLM asks for is checked against the plan before
anything is said or called; confirmation, policy, honesty on failure, hand-over, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from voicebot.dialplan import toolargs
from voicebot.dialplan.convtest import run_tests
from voicebot.dialplan.interpreter import (
    AgentReply,
    AgentTurn,
    CallStarted,
    Dtmf,
    Interpreter,
    NoInputTimeout,
    PlaybackDone,
    SayAction,
    SpeechFinal,
    State,
    ToolCall,
    ToolResult,
    TransferAction,
)
from voicebot.dialplan.plan import parse
from voicebot.dialplan.verbs.agent import AgentTool
from voicebot.dialplan.yamlsafe import YamlError

REPO = Path(__file__).resolve().parents[3]
PLAN_PATH = REPO / "dialplans" / "reschedule.yaml"
PLAN = parse(PLAN_PATH.read_bytes(), "reschedule.yaml")
MOVE = {"booking_ref": "AB12CD", "new_date": "2026-12-08", "new_time": "15:00"}


def said(actions: list[Any]) -> list[str]:
    return [a.text for a in actions if isinstance(a, SayAction)]


def played(it: Interpreter, actions: list[Any], now: float) -> list[Any]:
    """Every SayAction heard to its end (the interpreter waits for some)."""
    out = list(actions)
    for a in actions:
        if isinstance(a, SayAction):
            out += it.handle(PlaybackDone(a.mark, now))
    return out


def in_chat(variables: dict[str, Any] | None = None) -> Interpreter:
    it = Interpreter(PLAN)
    out = it.handle(CallStarted(0.0))
    assert isinstance(out[-1], AgentTurn) and it.state.waiting == "agent"
    it.state.variables.update(variables or {})
    return it


def ask_tool(it: Interpreter, name: str, args: Any, now: float = 2.0) -> list[Any]:
    text = args if isinstance(args, str) else json.dumps(args)
    return it.handle(AgentReply("", True, now, ("call_1", name, text)))


def last_tool_message(it: Interpreter) -> dict[str, Any]:
    role, text = it.state.agent_messages[-1]
    assert role == "tool"
    return json.loads(json.loads(text)["content"])


def test_the_model_is_offered_the_tools_with_json_schemas_and_hand_over() -> None:
    it = Interpreter(PLAN)
    turn = it.handle(CallStarted(0.0))[-1]
    assert isinstance(turn, AgentTurn)
    names = [t["function"]["name"] for t in turn.tools]
    assert names == ["move_appointment", "hand_over"]
    params = turn.tools[0]["function"]["parameters"]
    assert params["required"] == ["booking_ref", "new_date", "new_time"]
    assert params["additionalProperties"] is False
    assert params["properties"]["booking_ref"] == {
        "type": "string",
        "description": "the booking reference, six letters or digits",
        "pattern": "[A-Z0-9]{6}",
        "maxLength": 64,
    }
    assert params["properties"]["new_date"]["format"] == "date"


def test_confirmed_call_goes_out_once_with_the_checked_arguments_and_success_goes_back_to_the_model() -> None:
    it = in_chat()
    out = ask_tool(it, "move_appointment", MOVE)
    assert said(out) == ["I will move booking AB12CD to 2026-12-08 at 15:00. Shall I go ahead?"]
    assert not any(isinstance(a, ToolCall) for a in out), "nothing is called before the caller says yes"
    calls = [a for a in it.handle(SpeechFinal("yes please", 0.9, 5.0)) if isinstance(a, ToolCall)]
    assert len(calls) == 1
    call = calls[0]
    assert (
        call.method == "POST" and call.url == "https://calendar.example.internal/v1/appointments/AB12CD/move"
    )
    assert call.body == {"date": "2026-12-08", "time": "15:00"}
    back = it.handle(ToolResult(True, {"reference": "MV-1", "internal_note": "secret"}, 6.0))
    assert isinstance(back[-1], AgentTurn)
    shown = last_tool_message(it)
    assert shown == {"ok": True, "confirmation": "MV-1"}, (
        "the model sees the mapped result, not the raw reply"
    )
    roles = [r for r, _ in back[-1].messages]
    assert roles[-2:] == ["tool_call", "tool"]
    end = played(it, it.handle(AgentReply("Done, moved to Tuesday at three.", True, 7.0)), 8.0)
    assert said(end) == ["Thank you for calling. Goodbye."] and it.state.variables["agent_status"] == "done"
    kinds = [(k, d.get("outcome")) for k, d in it.notes]
    assert ("agent_tool", "accepted") in kinds and ("agent_tool", "confirmed") in kinds


@pytest.mark.parametrize("answer", [Dtmf("2", 5.0), SpeechFinal("no, not that", 0.9, 5.0)])
def test_no_calls_nothing_and_the_model_is_told(answer: Any) -> None:
    it = in_chat()
    ask_tool(it, "move_appointment", MOVE)
    out = it.handle(answer)
    assert not any(isinstance(a, ToolCall) for a in out)
    assert isinstance(out[-1], AgentTurn)
    assert "nothing was done" in last_tool_message(it)["declined"]
    assert it.state.variables["tool_status"] == "declined"


def test_silence_is_not_consent_and_an_unclear_answer_is_asked_once_more() -> None:
    it = in_chat()
    ask_tool(it, "move_appointment", MOVE)
    again = it.handle(SpeechFinal("the weather is nice", 0.9, 4.0))
    assert said(again) == ["I will move booking AB12CD to 2026-12-08 at 15:00. Shall I go ahead?"]
    out = it.handle(NoInputTimeout(9.0))
    assert not any(isinstance(a, ToolCall) for a in out) and "declined" in last_tool_message(it)


@pytest.mark.parametrize(
    ("name", "args", "why"),
    [
        (
            "move_appointment",
            {**MOVE, "booking_ref": "+1 900 555 0100"},
            "booking_ref: does not have the expected form",
        ),
        ("move_appointment", {**MOVE, "new_date": "next tuesday"}, "new_date: must be a date as YYYY-MM-DD"),
        ("move_appointment", {**MOVE, "new_time": "25:00"}, "new_time: must be a time as HH:MM"),
        ("move_appointment", {**MOVE, "queue": "premium"}, "unknown argument 'queue'"),
        ("move_appointment", {"booking_ref": "AB12CD"}, "missing argument 'new_date'"),
        ("move_appointment", "{not json", "arguments are not valid JSON"),
        ("move_appointment", "[1, 2]", "arguments must be a JSON object"),
        ("transfer_call", {"number": "+19005550100"}, "there is no tool named 'transfer_call'"),
    ],
)
def test_what_does_not_fit_is_refused_before_anything_is_said_or_called(
    name: str, args: Any, why: str
) -> None:
    it = in_chat()
    out = ask_tool(it, name, args)
    assert not any(isinstance(a, ToolCall | SayAction | TransferAction) for a in out)
    assert isinstance(out[-1], AgentTurn)
    assert why in last_tool_message(it)["error"]
    assert it.state.variables["booking_ref"] == "", "no variable is set from refused arguments"


def test_a_policy_that_does_not_hold_blocks_the_tool_and_is_recorded() -> None:
    source = (
        PLAN_PATH.read_text()
        .replace(
            "          retry_safe: true",
            "          retry_safe: true\n          allowed_when: verified == true",
        )
        .replace("variables:\n  {", "variables:\n  {verified: false, ")
    )
    plan = parse(source.encode(), "policy.yaml")
    it = Interpreter(plan)
    it.handle(CallStarted(0.0))
    out = ask_tool(it, "move_appointment", MOVE)
    assert not any(isinstance(a, ToolCall | SayAction) for a in out)
    assert "not allowed" in last_tool_message(it)["error"]
    (block,) = [d for k, d in it.notes if k == "policy_block"]
    assert block["tool"] == "move_appointment" and block["rule"] == "verified == true"
    it.state.variables["verified"] = True  # e.g. a PIN checked by a subflow before
    assert said(ask_tool(it, "move_appointment", MOVE, 3.0))


def test_a_failed_backend_is_not_the_models_to_phrase_the_plan_says_it_and_offers_a_person() -> None:
    it = in_chat()
    ask_tool(it, "move_appointment", MOVE)
    it.handle(Dtmf("1", 4.0))
    out = played(it, it.handle(ToolResult(False, "calendar: HTTP 500", 5.0)), 6.0)
    assert not any(isinstance(a, AgentTurn) for a in out)
    assert said(out)[:2] == [
        "Sorry, I could not do that right now.",
        "Let me put you through to a colleague.",
    ]
    assert it.state.variables["agent_status"] == "tool_failed"
    transfer = [a for a in played(it, out, 7.0) if isinstance(a, TransferAction)]
    assert transfer and transfer[0].queue == "support"


def test_hand_over_goes_to_the_plans_step_never_to_a_destination_the_model_names() -> None:
    it = in_chat()
    out = played(it, ask_tool(it, "hand_over", {"queue": "+1 900 555 0100"}), 3.0)
    transfers = [a for a in out if isinstance(a, TransferAction)]
    assert [t.queue for t in transfers] == ["support"]


def test_a_model_that_keeps_calling_tools_is_stopped() -> None:
    it = in_chat()
    out: list[Any] = []
    for i in range(7):
        out = ask_tool(it, "transfer_call", {}, 2.0 + i)
    assert it.state.variables["agent_status"] == "tool_failed"
    assert said(out)[0] == "Sorry, I could not do that right now."


def test_checkpointed_mid_confirmation_the_call_asks_again_in_a_new_worker() -> None:
    it = in_chat()
    ask_tool(it, "move_appointment", MOVE)
    restored = Interpreter(PLAN, State.model_validate_json(it.state.model_dump_json()))
    again = restored.resume()
    assert said(again) == ["I will move booking AB12CD to 2026-12-08 at 15:00. Shall I go ahead?"]
    assert [a for a in restored.handle(Dtmf("1", 9.0)) if isinstance(a, ToolCall)]
    assert restored.pending_request() is PLAN.steps["chat"].verb.tools["move_appointment"]  # type: ignore[union-attr]


def test_the_shipped_conversation_tests_pass() -> None:
    outcomes = run_tests(PLAN_PATH)
    assert outcomes and all(not o.failures for o in outcomes), [(o.name, o.failures) for o in outcomes]


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ("[calendar]", "tools is a mapping"),
        ("{t: {description: d, integration: c, parameters: {x: {type: string}}}}", "never free text"),
        ("{Bad-Name: {description: d, integration: c}}", "lower-case letters"),
        ("{hand_over: {description: d, integration: c}}", "lower-case letters"),
        ("{t: {description: d, integration: c, allowed_when: 'import os'}}", "allowed_when"),
        ("{t: {description: d, integration: nowhere}}", "'nowhere' is not declared under `integrations`"),
    ],
)
def test_tool_declarations_that_would_let_free_text_through_are_refused(tools: str, message: str) -> None:
    source = (
        "id: a\nversion: 1\nintegrations: {c: {base_url: 'https://c.example/api'}}\nsteps:\n"
        f"  chat:\n    agent: {{instructions: Help., tools: {tools}}}\n"
    )
    with pytest.raises(YamlError) as err:
        parse(source.encode(), "a.yaml")
    assert message in str(err.value)


def test_argument_types_and_sensitive_ones_are_redacted_for_the_record() -> None:
    tool = AgentTool.model_validate(
        {
            "description": "d",
            "integration": "c",
            "parameters": {
                "account": {"pattern": "[0-9]{5}", "sensitive": True},
                "count": {"type": "integer", "minimum": 1, "maximum": 3},
                "urgent": {"type": "boolean", "optional": True},
                "kind": {"enum": ["a", "b"]},
            },
        }
    )
    args, why = toolargs.validate(tool, json.dumps({"account": "12345", "count": 2.0, "kind": "b"}))
    assert why == "" and args == {"account": "12345", "count": 2, "urgent": "", "kind": "b"}
    assert toolargs.redacted(tool, args)["account"] == "<redacted>"
    assert toolargs.validate(tool, '{"account": "12345", "count": 9, "kind": "b"}')[1].startswith("count:")
    assert (
        toolargs.validate(tool, '{"account": "12345", "count": true, "kind": "b"}')[1]
        == "count: must be an integer"
    )
    assert (
        toolargs.validate(tool, '{"account": "12345", "count": 1, "kind": "c"}')[1]
        == "kind: must be one of a, b"
    )


def test_numbers_that_are_not_finite_are_refused() -> None:
    tool = AgentTool.model_validate(
        {"description": "d", "integration": "c", "parameters": {"n": {"type": "number", "maximum": 10}}}
    )
    for text in ('{"n": NaN}', '{"n": Infinity}', '{"n": 1e999}'):
        assert toolargs.validate(tool, text)[1] == "n: must be a number", text
    assert toolargs.validate(tool, '{"n": 2.5}') == ({"n": 2.5}, "")
