"""Every verb, run by the interpreter on small plans (scripted timelines, no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from voicebot.dialplan.events import (
    Action,
    AgentReply,
    AgentTurn,
    CallerHungUp,
    HangupAction,
    RecordingDone,
    SayAction,
    SpeechPartial,
    StartCollect,
    StartRecording,
    ToolCall,
    ToolResult,
    TransferAction,
    TransferResult,
)
from voicebot.dialplan.verbs import VERBS

CallOf = Callable[..., Any]


def said(actions: list[Action]) -> list[str]:
    return [a.text for a in actions if isinstance(a, SayAction)]


def of(kind: type, actions: list[Action]) -> list[object]:
    return [a for a in actions if isinstance(a, kind)]


def test_every_documented_verb_is_registered() -> None:
    assert set(VERBS) == {
        "say", "collect", "menu", "branch", "set", "agent", "tool", "transfer", "record", "hangup",
        "goto", "subflow", "return", "callback",
    }  # fmt: skip


def test_say_renders_variables_and_barge_in(call_of: Callable[..., Any]) -> None:
    call = call_of(
        "  a: {say: {text: 'Hi {caller}, {missing}done', barge_in: false}}\n"
        "  b: {set: {values: {ok: true}}}\n"
        "  c: {say: 'ok is {ok}'}\n  d: {hangup: {}}\n"
    )
    out = call.start()
    assert said(out) == ["Hi +15550100, done", "ok is yes"]
    assert [a.barge_in for a in of(SayAction, out)] == [False, True]
    assert of(HangupAction, out) == [HangupAction("completed")]


def test_collect_digits_with_terminator_length_and_sensitive(call_of: Callable[..., Any]) -> None:
    call = call_of(
        "  pin: {collect: {prompt: PIN?, into: pin, kind: digits, min_digits: 4, max_digits: 6,"
        " sensitive: true}}\n  bye: {hangup: 'got {pin}'}\n"
    )
    start = call.start()
    (listen,) = of(StartCollect, start)
    assert (listen.kind, listen.max_digits, listen.terminator, listen.sensitive) == ("digits", 6, "#", True)
    assert said(call.keys("12#")) == ["PIN?"]  # too short: asked again
    assert said(call.keys("4719#")) == ["got 4719"]
    assert call.vars["pin_via"] == "keys"


def test_collect_digits_end_at_max_length_or_after_a_pause(call_of: Callable[..., Any]) -> None:
    steps = (
        "  n: {collect: {prompt: N?, into: n, kind: digits, min_digits: 2, max_digits: 3}}\n"
        "  e: {hangup: {}}\n"
    )
    call = call_of(steps)
    call.start()
    call.keys("123")
    assert call.vars["n"] == "123"
    call = call_of(steps)
    call.start()
    call.keys("45")
    call.silence()  # the inter-digit pause ends the entry
    assert call.vars["n"] == "45"


@pytest.mark.parametrize(
    ("answer", "value"), [("yes please", True), ("no thanks", False), ("#1", True), ("#2", False)]
)
def test_collect_yes_no_by_voice_or_keys(call_of: Callable[..., Any], answer: str, value: bool) -> None:
    call = call_of("  q: {collect: {prompt: OK?, into: ok, kind: yes_no}}\n  e: {hangup: {}}\n")
    call.start()
    call.keys(answer[1:]) if answer.startswith("#") else call.say(answer)
    assert call.vars["ok"] is value


def test_collect_number_in_words_with_range(call_of: Callable[..., Any]) -> None:
    call = call_of(
        "  q: {collect: {prompt: How many?, into: n, kind: number, min_value: 1, max_value: 10}}\n"
        "  e: {hangup: {}}\n"
    )
    call.start()
    assert said(call.say("forty two")) == ["How many?"]  # out of range
    call.say("seven")
    assert call.vars["n"] == 7


@pytest.mark.parametrize(
    ("kind", "answer", "value"),
    [
        ("date", "tomorrow", "2026-11-25"),
        ("date", "the third of December", "2026-12-03"),
        ("date", "#20270105", "2027-01-05"),
        ("time", "quarter to four", "15:45"),
        ("time", "10:30 am", "10:30"),
        ("time", "#0915", "09:15"),
    ],
)
def test_collect_date_and_time(call_of: Callable[..., Any], kind: str, answer: str, value: str) -> None:
    call = call_of(f"  q: {{collect: {{prompt: When?, into: v, kind: {kind}}}}}\n  e: {{hangup: {{}}}}\n")
    call.start(today="2026-11-24")
    call.keys(answer[1:]) if answer.startswith("#") else call.say(answer)
    assert call.vars["v"] == value


def test_collect_choice_with_synonyms_keys_and_ambiguity(call_of: Callable[..., Any]) -> None:
    steps = (
        "  q:\n    collect:\n      prompt: Colour?\n      into: c\n      kind: choice\n"
        "      choices: [{value: red, synonyms: [crimson, 'fire engine'], keys: '1'}, blue]\n"
        "  e: {hangup: {}}\n"
    )
    call = call_of(steps)
    call.start()
    assert said(call.say("red or blue")) == ["Colour?"]  # ambiguous
    call.say("like a fire engine")
    assert call.vars["c"] == "red"
    call = call_of(steps)
    call.start()
    call.keys("1")
    assert call.vars["c"] == "red"


def test_collect_text_confidence_and_validation(call_of: Callable[..., Any]) -> None:
    call = call_of(
        "  q: {collect: {prompt: Code?, reprompts: [Say the code again.], into: code, kind: text,"
        " min_confidence: 0.6, validate: '[A-Z]{2}[0-9]'}}\n  e: {hangup: {}}\n"
    )
    call.start()
    assert said(call.say("AB1", confidence=0.3)) == ["Say the code again."]
    assert said(call.say("hello")) == ["Say the code again."]
    call.say("AB1")
    assert call.vars["code"] == "AB1"


def test_collect_retries_run_out_to_its_handler(call_of: Callable[..., Any]) -> None:
    call = call_of(
        "  q: {collect: {prompt: Q?, into: v, retries: 1, no_input: gone}}\n"
        "  e: {hangup: {}}\n  gone: {hangup: {say: Bye., disposition: silent}}\n"
    )
    call.start()
    assert said(call.silence()) == ["Q?"]
    assert of(HangupAction, call.silence()) == [HangupAction("silent")]


def test_menu_stores_the_choice_and_ambiguity_reprompts(call_of: Callable[..., Any]) -> None:
    call = call_of(
        "  m:\n    menu:\n      prompt: Sales or support?\n      into: dept\n      options:\n"
        "        - {keys: '1', words: [sales], goto: s}\n        - {keys: '2', words: [support], goto: t}\n"
        "  s: {hangup: S}\n  t: {hangup: T}\n"
    )
    call.start()
    assert said(call.say("sales or support")) == ["Sales or support?"]
    assert said(call.say("support please")) == ["T"]
    assert (call.vars["dept"], call.vars["dept_via"]) == ("support", "speech")


def test_branch_set_and_goto(call_of: Callable[..., Any]) -> None:
    call = call_of(
        "  a: {set: {values: {n: 3, who: '{caller}'}}}\n"
        "  b: {branch: {cases: [{when: 'n > 5', goto: big}, {when: \"who == '+15550100'\", goto: me}],"
        " default: big}}\n  big: {hangup: big}\n  me: {goto: end}\n  end: {hangup: me}\n"
    )
    assert said(call.start()) == ["me"]


def test_agent_without_an_llm_takes_its_error_path(call_of: Callable[..., Any]) -> None:
    call = call_of("  a: {agent: {instructions: Help., on_error: e}}\n  e: {hangup: no agent}\n")
    (turn,) = call.start()
    assert isinstance(turn, AgentTurn) and turn.instructions == "Help."
    assert said(call.feed(AgentReply("", False, 1.0))) == ["no agent"]
    assert call.vars["agent_status"] == "unavailable"


TOOL_HEAD = (
    "id: t\nversion: 1\nintegrations:\n  crm: {base_url: 'https://crm.example/api', "
    "headers: {Authorization: 'Bearer ${env:CRM}'}, timeout_s: 2, retries: 2}\n"
)


def test_tool_call_maps_results_and_keeps_types(call_of: Callable[..., Any]) -> None:
    call = call_of(
        "  a: {set: {values: {acct: 'a b', n: 5}}}\n"
        "  t: {tool: {integration: crm, method: POST, path: '/acct/{acct}', body: {n: '{n}', note: 'x{n}'},"
        " result: {name: customer.name, first: items.0}}}\n  e: {hangup: '{name} {first} {tool_status}'}\n",
        TOOL_HEAD,
    )
    (tool,) = of(ToolCall, call.start())
    assert tool == ToolCall(
        "crm", "POST", "https://crm.example/api/acct/a%20b", {"n": 5, "note": "x5"},
        {"Authorization": "Bearer ${env:CRM}"}, 2.0, 2,
    )  # fmt: skip
    out = call.feed(ToolResult(True, {"customer": {"name": "Ana"}, "items": ["x"]}, 1.0))
    assert said(out) == ["Ana x ok"]


def test_tool_failure_sets_the_error_and_goes_to_on_error(call_of: Callable[..., Any]) -> None:
    call = call_of(
        "  t: {tool: {integration: crm, on_error: oops}}\n  e: {hangup: {}}\n"
        "  oops: {hangup: '{tool_error}'}\n",
        TOOL_HEAD,
    )
    call.start()
    assert said(call.feed(ToolResult(False, "HTTP 503", 1.0))) == ["HTTP 503"]


def test_tool_confirm_asks_first(call_of: Callable[..., Any]) -> None:
    steps = (
        "  t: {tool: {integration: crm, confirm: 'Book it?', on_decline: nope}}\n"
        "  e: {hangup: booked}\n  nope: {hangup: declined}\n"
    )
    call = call_of(steps, TOOL_HEAD)
    out = call.start()
    assert said(out) == ["Book it?"] and not of(ToolCall, out)
    assert said(call.say("hmm")) == ["Book it?"]  # unclear: once more
    assert of(ToolCall, call.say("yes")) != []
    call = call_of(steps, TOOL_HEAD)
    call.start()
    assert said(call.keys("2")) == ["declined"]
    assert call.vars["tool_status"] == "declined"


def test_transfer_with_context_and_failure_variables(call_of: Callable[..., Any]) -> None:
    call = call_of(
        "  a: {set: {values: {acct: '42'}}}\n"
        "  x: {transfer: {queue: sales, reason: 'acct {acct}', context: {Account: '{acct}'},"
        " on_failure: f}}\n"
        "  f: {hangup: 'failed: {transfer_reason}'}\n"
    )
    (action,) = of(TransferAction, call.start())
    assert action == TransferAction("sales", "acct 42", {"Account": "42"})
    out = call.feed(TransferResult(False, 2.0, "busy"))
    assert said(out) == ["failed: busy"] and call.vars["transfer_status"] == "failed"


def test_transfer_success_ends_the_call(call_of: Callable[..., Any]) -> None:
    call = call_of("  x: {transfer: {queue: support, announce: Connecting.}}\n")
    assert said(call.start()) == ["Connecting."]
    assert call.feed(TransferResult(True, 1.0)) == []
    assert call.it.state.disposition == "transferred"


def test_record_with_consent(call_of: Callable[..., Any]) -> None:
    call = call_of(
        "  r: {record: {consent: May I?, prompt: Go., max_s: 30}}\n  e: {hangup: '{recording_s}'}\n"
    )
    call.start()
    out = call.say("yes")
    assert said(out) == ["Go."] and of(StartRecording, out)[0].max_s == 30
    assert said(call.feed(RecordingDone("/tmp/m.wav", 12.34, 3.0))) == ["12.3"]


def test_hangup_disposition_and_caller_hangup(call_of: Callable[..., Any]) -> None:
    call = call_of("  q: {collect: {prompt: Q?, into: v}}\n  e: {hangup: {disposition: resolved}}\n")
    call.start()
    assert call.feed(SpeechPartial("hel", 1.0)) == []
    assert call.feed(CallerHungUp(2.0)) == []
    assert call.it.state.disposition == "caller_hung_up"
    assert call.say("hello") == []
    call = call_of("  e: {hangup: {disposition: resolved}}\n")
    assert of(HangupAction, call.start()) == [HangupAction("resolved")]


def test_call_wide_no_input_limit_hands_over(call_of: Callable[..., Any]) -> None:
    call = call_of(
        "  a: {collect: {prompt: A?, into: a, retries: 5}}\n  e: {hangup: {}}\n  p: {hangup: person}\n",
        HEAD_WITH_HANDLERS,
    )
    call.start()
    call.silence()
    assert said(call.silence()) == ["person"]


HEAD_WITH_HANDLERS = "id: t\nversion: 1\nhandlers: {no_input: p, max_no_input: 2}\n"


@pytest.mark.timeout(10)  # with a backtracking matcher this test never ends (seen: > 60 s at 100 % CPU)
def test_a_catastrophic_validate_pattern_answers_at_once(call_of: CallOf) -> None:
    """`^(a+)+$` is a legal pattern that backtracking engines take exponential time over on 'aaa...b';
    RE2 matches it in linear time, so the caller's answer is judged and the call goes on."""
    call = call_of(
        "  q: {collect: {prompt: Code?, reprompts: [Again?], into: code, kind: text,"
        " validate: '^(a+)+$'}}\n  e: {hangup: {}}\n"
    )
    call.start()
    assert said(call.say("a" * 40 + "b")) == ["Again?"]
    call.say("a" * 5000)  # longer than any answer: refused without matching
    assert "code" not in call.vars
    call.say("aaaa")
    assert call.vars["code"] == "aaaa"


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=a)a", "(?<!x)y"])
def test_a_validate_pattern_that_cannot_run_in_linear_time_is_refused_at_load(pattern: str) -> None:
    from voicebot.dialplan.plan import parse
    from voicebot.dialplan.yamlsafe import YamlError

    text = f"id: t\nversion: 1\nsteps:\n  q:\n    collect: {{prompt: Q?, into: v, validate: '{pattern}'}}\n"
    with pytest.raises(YamlError) as err:
        parse(text, "t.yaml")
    message = str(err.value)
    assert "t.yaml:5" in message and "RE2" in message and "rewrite the pattern" in message
