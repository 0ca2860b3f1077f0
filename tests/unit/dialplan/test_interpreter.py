"""Interpreter timelines on the shipped example and small plans (scripted events, no I/O)."""

from __future__ import annotations

from pathlib import Path

from voicebot.dialplan.interpreter import (
    AgentReply,
    AgentTurn,
    CallerHungUp,
    CallStarted,
    Dtmf,
    HangupAction,
    Interpreter,
    NoInputTimeout,
    PlaybackDone,
    SayAction,
    SpeechFinal,
    StartCollect,
    State,
    TransferAction,
    TransferResult,
)
from voicebot.dialplan.plan import parse

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = parse((REPO / "dialplans" / "example.yaml").read_bytes(), "example.yaml")


def says(actions: list[object]) -> list[str]:
    return [a.text for a in actions if isinstance(a, SayAction)]


def test_greeting_then_menu_waits_for_the_caller() -> None:
    it = Interpreter(EXAMPLE)
    actions = it.handle(CallStarted(0.0))
    assert says(actions) == [
        "Hello, this is voicebot.",
        "Say sales or support, or press 1 for sales, 2 for support, or hash to hang up.",
    ]
    collect = actions[-1]
    assert isinstance(collect, StartCollect) and "sales" in collect.hints and it.state.waiting == "input"


def test_asking_for_sales_by_voice_announces_then_transfers() -> None:
    it = Interpreter(EXAMPLE)
    it.handle(CallStarted(0.0))
    announce = it.handle(SpeechFinal("I'd like to talk to someone in sales, please.", 0.9, 3.0))
    assert says(announce) == ["Transferring you to sales."]
    assert it.handle(PlaybackDone(announce[0].mark, 4.5)) == [TransferAction("sales", "")]  # type: ignore[union-attr]
    assert it.handle(TransferResult(ok=True, now=5.0)) == []
    assert it.state.ended and it.state.disposition == "transferred"


def test_key_2_goes_to_support_and_a_failed_transfer_returns_to_the_menu() -> None:
    it = Interpreter(EXAMPLE)
    it.handle(CallStarted(0.0))
    announce = it.handle(Dtmf("2", 1.0))
    it.handle(PlaybackDone(announce[0].mark, 2.0))  # type: ignore[union-attr]
    back = it.handle(TransferResult(ok=False, now=3.0))
    assert says(back)[0] == "Sorry, nobody can take your call right now."
    assert it.state.step == "main_menu" and it.state.waiting == "input"


def test_no_match_reprompts_then_no_input_says_goodbye() -> None:
    it = Interpreter(EXAMPLE)
    it.handle(CallStarted(0.0))
    assert says(it.handle(SpeechFinal("the weather", 0.8, 1.0)))[0].startswith(
        "Sorry, I did not catch"
    )  # retry 1
    assert it.state.retries == 1
    it.handle(NoInputTimeout(8.0))  # retry 2
    bye = it.handle(NoInputTimeout(15.0))  # retries exhausted -> no_input target
    assert says(bye) == ["Goodbye."]
    assert it.handle(PlaybackDone(bye[0].mark, 16.0)) == [HangupAction("completed")]  # type: ignore[union-attr]


def test_state_round_trips_through_json_mid_call() -> None:
    it = Interpreter(EXAMPLE)
    it.handle(CallStarted(0.0))
    saved = it.state.model_dump_json()
    resumed = Interpreter(EXAMPLE, State.model_validate_json(saved))
    assert says(resumed.handle(Dtmf("1", 2.0))) == ["Transferring you to sales."]


def test_collect_digits_branch_and_variables() -> None:
    plan = parse(
        "id: pin\nversion: 1\nqueues: [support]\nvariables: {attempts: 0}\nsteps:\n"
        "  ask:\n    collect: {prompt: Enter your PIN then hash., into: pin, kind: digits, max_digits: 6,"
        " min_digits: 4, sensitive: true}\n"
        "  decide:\n    branch: {cases: [{when: \"pin == '4719'\", goto: ok}], default: bad}\n"
        "  ok:\n    hangup: PIN {pin} accepted.\n"
        "  bad:\n    transfer: support\n",
        "pin.yaml",
    )
    it = Interpreter(plan)
    start = it.handle(CallStarted(0.0))
    assert isinstance(start[-1], StartCollect) and start[-1].sensitive and start[-1].max_digits == 6
    for d in "4719":
        assert it.handle(Dtmf(d, 1.0)) == []
    done = it.handle(Dtmf("#", 2.0))
    assert says(done) == ["PIN 4719 accepted."] and it.state.variables["pin"] == "4719"
    it2 = Interpreter(plan)
    it2.handle(CallStarted(0.0))
    for d in "12":
        it2.handle(Dtmf(d, 1.0))
    assert says(it2.handle(Dtmf("#", 2.0)))[0].startswith("Enter your PIN")  # too short: reprompt
    for d in "0000#":
        out = it2.handle(Dtmf(d, 3.0))
    assert out == [TransferAction("support", "")]


def test_caller_hangup_ends_everything() -> None:
    it = Interpreter(EXAMPLE)
    it.handle(CallStarted(0.0))
    assert it.handle(CallerHungUp(1.0)) == [] and it.state.ended
    assert it.handle(Dtmf("1", 2.0)) == []


HANDLERS = parse(
    "id: h\nversion: 1\nqueues: [support]\n"
    "handlers: {agent: person, no_input: person, error: person}\n"
    "steps:\n"
    "  ask:\n    collect: {prompt: Account number?, into: acct, kind: digits, max_digits: 5, retries: 0}\n"
    "  bye:\n    hangup: Thanks.\n"
    "  person:\n    transfer: {queue: support, reason: caller asked for a person}\n",
    "h.yaml",
)


def test_agent_handler_by_word_anywhere() -> None:
    it = Interpreter(HANDLERS)
    it.handle(CallStarted(0.0))
    assert it.handle(SpeechFinal("I want an agent", 0.9, 1.0)) == [
        TransferAction("support", "caller asked for a person")
    ]


def test_agent_key_is_a_digit_inside_a_digits_collect() -> None:
    it = Interpreter(HANDLERS)
    it.handle(CallStarted(0.0))
    assert it.handle(Dtmf("0", 1.0)) == []  # part of the account number, not a request for a person
    assert it.state.digits == "0"


def test_global_no_input_handler_when_the_step_has_none() -> None:
    it = Interpreter(HANDLERS)
    it.handle(CallStarted(0.0))
    assert it.handle(NoInputTimeout(7.0)) == [TransferAction("support", "caller asked for a person")]


AGENT_PLAN = (
    "id: a\nversion: 1\nqueues: [support]\nhandlers: {error: person, agent: person}\nsteps:\n"
    "  chat:\n    agent: {instructions: 'Help {caller} with their order.', max_turns: 3,"
    " done_when: 'agent_turns >= 2 and wants_more == false'}\n"
    "  bye:\n    hangup: Bye.\n"
    "  person:\n    transfer: support\n"
)


def test_agent_conversation_timeline() -> None:
    """The LLM speaks first; caller turns, keys and silence go to it; max_turns ends the step."""
    it = Interpreter(parse(AGENT_PLAN.replace(" and wants_more == false", " and False"), "a.yaml"))
    (first,) = it.handle(CallStarted(0.0, caller="Ana"))
    assert first == AgentTurn("Help Ana with their order.", (), True)
    assert it.handle(SpeechFinal("hello?", 0.9, 0.5)) == []  # not listening while the LLM answers
    (listen,) = it.handle(AgentReply("Hi Ana, how can I help?", True, 1.0))
    assert listen == StartCollect("text", 6.0)
    (second,) = it.handle(SpeechFinal("Where is my order?", 0.9, 2.0))
    assert second.messages == (("assistant", "Hi Ana, how can I help?"), ("user", "Where is my order?"))
    it.handle(AgentReply("It ships tomorrow.", True, 3.0))
    (third,) = it.handle(NoInputTimeout(9.0))
    assert third.messages[-1] == ("user", "(the caller said nothing)")
    out = it.handle(AgentReply("Anything else?", True, 10.0))  # the third reply: max_turns
    assert [a.text for a in out if isinstance(a, SayAction)] == ["Bye."]
    assert it.state.variables["agent_status"] == "max_turns"
    restored = Interpreter(it.plan, State.model_validate_json(it.state.model_dump_json()))
    assert restored.state.agent_messages == it.state.agent_messages  # checkpointable mid-conversation


def test_agent_done_when_keys_and_asking_for_a_person() -> None:
    plan = parse(AGENT_PLAN.replace(" and wants_more == false", ""), "a.yaml")
    it = Interpreter(plan)
    it.handle(CallStarted(0.0))
    it.handle(AgentReply("Hello.", True, 1.0))
    (turn,) = it.handle(Dtmf("5", 2.0))
    assert turn.messages[-1] == ("user", "(pressed 5)")
    out = it.handle(AgentReply("You pressed five.", True, 3.0))  # agent_turns >= 2: done
    assert it.state.variables["agent_status"] == "done" and [a.text for a in out] == ["Bye."]
    again = Interpreter(plan)
    again.handle(CallStarted(0.0))
    again.handle(AgentReply("Hello.", True, 1.0))
    assert again.handle(SpeechFinal("I want a human", 0.9, 2.0)) == [TransferAction("support", "")]


def test_an_llm_that_cannot_answer_takes_the_error_path() -> None:
    it = Interpreter(parse(AGENT_PLAN, "a.yaml"))
    it.handle(CallStarted(0.0))
    assert it.handle(AgentReply("", False, 5.0)) == [TransferAction("support", "")]
    assert it.state.variables["agent_status"] == "unavailable"


def test_reprompts_escalate_and_answers_are_validated() -> None:
    plan = parse(
        "id: v\nversion: 1\nsteps:\n"
        "  ask:\n    collect:\n      prompt: Your zip code?\n"
        "      reprompts: [Five digits please., Like 9 0 2 1 0.]\n"
        "      into: zip\n      kind: number\n      validate: '[0-9]{5}'\n      min_confidence: 0.5\n"
        "      retries: 2\n"
        "  done:\n    hangup: Got {zip}.\n",
        "v.yaml",
    )
    it = Interpreter(plan)
    assert says(it.handle(CallStarted(0.0))) == ["Your zip code?"]
    assert says(it.handle(SpeechFinal("it is 1234", 0.9, 1.0))) == ["Five digits please."]  # fails validation
    assert says(it.handle(SpeechFinal("90210", 0.3, 2.0))) == ["Like 9 0 2 1 0."]  # too unsure
    assert says(it.handle(SpeechFinal("nine oh two one oh, 90210", 0.9, 3.0))) == ["Got 90210."]


def test_accepts_only_closed_answers_and_keeps_min_confidence() -> None:
    it = Interpreter(EXAMPLE)
    it.handle(CallStarted(0.0))
    assert it.accepts("sales please") and not it.accepts("the weather")
    assert it.state.no_matches == 0 and it.state.step == "main_menu"  # a dry run changes nothing
    plan = parse(
        "id: v\nversion: 1\nsteps:\n  ask:\n"
        "    collect: {prompt: Sure?, into: ok, kind: yes_no, min_confidence: 0.6}\n"
        "  done:\n    hangup: Bye.\n",
        "v.yaml",
    )
    sure = Interpreter(plan)
    sure.handle(CallStarted(0.0))
    assert sure.accepts("yes", 0.9) and not sure.accepts("yes", 0.3)


PIN_THEN_MENU = parse(
    b"""
id: spare
version: 1
steps:
  pin:
    collect: {prompt: Key in your PIN then press hash., into: pin, kind: digits, min_digits: 4, max_digits: 4}
    next: menu
  menu:
    menu:
      prompt: Press 1 to pay or hash to hang up.
      options:
        - {keys: "1", goto: bye}
        - {keys: "#", goto: bye}
  bye:
    hangup: {say: Bye.}
""",
    "spare.yaml",
)


def test_the_hash_after_a_full_length_pin_is_the_pins_not_an_answer_to_the_next_menu() -> None:
    it = Interpreter(PIN_THEN_MENU)
    it.handle(CallStarted(0.0))
    for i, key in enumerate("4719"):
        it.handle(Dtmf(key, 1.0 + i / 5))
    assert it.state.variables["pin"] == "4719" and it.state.step == "menu"
    assert it.spare("#", 2.0), "the habitual terminator answers nothing"
    assert not it.spare("#", 2.1), "only once"
    assert it.handle(Dtmf("#", 2.1)) != [] and it.state.step == "bye"


def test_a_late_or_different_key_after_a_full_length_pin_counts() -> None:
    late = Interpreter(PIN_THEN_MENU)
    late.handle(CallStarted(0.0))
    for key in "4719":
        late.handle(Dtmf(key, 1.0))
    assert not late.spare("#", 5.0), "3 s on, a hash answers the menu"
    other = Interpreter(PIN_THEN_MENU)
    other.handle(CallStarted(0.0))
    for key in "4719":
        other.handle(Dtmf(key, 1.0))
    assert not other.spare("1", 1.2) and not other.spare("#", 1.3), "another key spends the chance"
