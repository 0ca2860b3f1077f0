"""The call engine on scripted timelines: events in, effects out, time as an argument (no I/O)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from voicebot.asr.base import Transcript
from voicebot.dialplan.plan import parse
from voicebot.engine import effects as fx
from voicebot.engine import events as ev
from voicebot.engine.builtin import builtin_plan
from voicebot.engine.engine import RESUME_APOLOGY, CallEngine, CallInfo, EngineConfig, Resume, plan_prompts

REPO = Path(__file__).resolve().parents[3]


def plan_of(name: str) -> Any:
    path = REPO / "dialplans" / f"{name}.yaml"
    return parse(path.read_bytes(), str(path))


EXAMPLE = plan_of("example")
BILLING = plan_of("billing")
ASSISTANT = plan_of("assistant")


def make(plan: Any = EXAMPLE, recognise: bool = True, resume: Resume | None = None) -> CallEngine:
    info = CallInfo(call_id="c-1", caller="alice", called="100", today="2026-12-02")
    return CallEngine(plan, info, EngineConfig(recognise=recognise), resume)


def of(kind: type, effects: list[fx.Effect]) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


def said(effects: list[fx.Effect]) -> list[str]:
    return [s.text for s in of(fx.Speak, effects)]


def play_all(engine: CallEngine, effects: list[fx.Effect], now: float) -> list[fx.Effect]:
    """Every prompt in ``effects`` is synthesised and played (and the prompts that follows)."""
    out: list[fx.Effect] = []
    for speak in of(fx.Speak, effects):
        out += engine.handle(ev.SpeechReady(speak.req), now)
        if speak.lead_mark:
            out += engine.handle(ev.Played(speak.lead_mark), now)
        more = engine.handle(ev.Played(speak.mark), now)
        out += more + play_all(engine, more, now)
    return out


def speech(engine: CallEngine, seconds: float, now: float) -> list[fx.Effect]:
    """``seconds`` of loud noise-like speech then 1 s of silence, as 20 ms frames."""
    import numpy as np

    rng = np.random.default_rng(7)
    out: list[fx.Effect] = []
    n = int(seconds / 0.02)
    for i in range(n + 50):
        if i < n:
            tone = np.sin(np.arange(160) * 2 * np.pi * 440 / 8000 + i) * 9000
            pcm = (tone + rng.integers(-1500, 1500, 160)).astype("<i2").tobytes()
        else:
            pcm = bytes(320)
        out += engine.handle(ev.Audio(pcm), now + i * 0.02)
    return out


def answer_decodes(
    engine: CallEngine, effects: list[fx.Effect], text: str | None, now: float
) -> list[fx.Effect]:
    """Answer every decode asked (and those asked meanwhile) with ``text``; None: each one fails."""
    out: list[fx.Effect] = []
    pending = of(fx.Decode, effects)
    while pending:
        d = pending.pop(0)
        if text is None:
            more = engine.handle(ev.DecodeFailed(d.req, "AsrError: boom"), now)
        else:
            more = engine.handle(ev.Decoded(d.req, Transcript(text, 0.9, 1.0, 0.1)), now)
        out += more
        pending += of(fx.Decode, more)
    return out


def test_greeting_menu_and_the_no_input_timer_after_the_prompt_has_played() -> None:
    e = make()
    started = e.start(0.0)
    assert said(started) == [
        "Hello, this is voicebot.",
        "Say sales or support, or press 1 for sales, 2 for support, or hash to hang up.",
    ]
    greeting, menu = of(fx.Speak, started)
    assert greeting.lead_mark == "turn:0" and menu.lead_mark is None and greeting.cache
    assert of(fx.Checkpoint, started)  # a new worker could go on from here
    assert e.no_input_at is None  # the menu has not been heard yet
    e.handle(ev.Played(greeting.mark), 1.0)
    e.handle(ev.Played(menu.mark), 5.0)
    assert e.next_deadline() == 11.0  # 6 s after the menu prompt ended
    reprompt = e.on_timer(11.0)
    assert said(reprompt) == ["Sorry, I did not catch that. Say sales or support, or press 1 or 2."]
    assert of(fx.Note, reprompt)[0].kind == "no_input"


def test_keys_transfer_after_the_announcement() -> None:
    e = make()
    play_all(e, e.start(0.0), 1.0)
    out = e.handle(ev.Key("1"), 2.0)
    assert said(out) == ["Transferring you to sales."]
    (announce,) = of(fx.Speak, out)
    done = e.handle(ev.Played(announce.mark), 3.0)
    assert of(fx.Transfer, done) == [fx.Transfer("sales", "dialplan transfer", {})]
    assert e.digits == ["1"]


def test_speaking_over_the_menu_stops_the_bot_and_a_complete_answer_is_taken_at_the_pause() -> None:
    e = make()
    started = e.start(0.0)
    out = speech(e, 0.6, 1.0)
    assert of(fx.StopSpeech, out), "barge-in: the caller spoke over the greeting"
    assert any(n.kind == "barge_in" for n in of(fx.Note, out))
    for speak in of(fx.Speak, started):  # their audio was flushed
        e.handle(ev.Dropped(speak.mark), 1.7)
    assert e.no_input_at is None  # the caller is answering
    decodes = of(fx.Decode, out)
    assert decodes and decodes[0].hints[:2] == ("sales", "buy")
    # "sales, please" ends the menu as soon as its pause's decode is back (multi-word options too)
    done = answer_decodes(e, decodes, "Sales, please.", 2.0)
    assert said(done) == ["Transferring you to sales."]
    notes = [n.kind for n in of(fx.Note, done)]
    assert "early_endpoint" in notes or "transcript" in notes


def test_a_recogniser_failure_is_the_steps_no_match_reprompt_not_silence() -> None:
    e = make()
    play_all(e, e.start(0.0), 0.5)
    failed = answer_decodes(e, speech(e, 0.8, 1.0), None, 3.0)
    assert said(failed) == ["Sorry, I did not catch that. Say sales or support, or press 1 or 2."]
    kinds = [n.kind for n in of(fx.Note, failed)]
    assert "asr_failed" in kinds and "asr_unrecognized" in kinds


def test_a_decode_that_never_comes_back_is_given_up_within_its_budget() -> None:
    e = make()
    play_all(e, e.start(0.0), 0.5)
    out = speech(e, 0.8, 1.0)
    assert of(fx.Decode, out)
    deadline = e.next_deadline()
    assert deadline is not None and deadline <= 1.0 + 0.8 + 1.0 + e.cfg.decode_budget_s
    gave_up = e.on_timer(deadline)
    pending = of(fx.Decode, gave_up)
    while pending:  # any decode asked after the first gave up: also never answered
        gave_up += e.on_timer(e.next_deadline() or 0.0)
        pending = [d for d in of(fx.Decode, gave_up) if d.req in e.decodes]
    assert "Sorry, I did not catch that." in " ".join(said(gave_up))
    late = e.handle(ev.Decoded(of(fx.Decode, out)[0].req, Transcript("sales", 0.9, 1, 1)), 30.0)
    assert late == []  # an answer to a request given up on is dropped


def test_without_a_recogniser_a_spoken_turn_rearms_the_timer() -> None:
    e = make(recognise=False)
    play_all(e, e.start(0.0), 0.5)
    speech(e, 0.6, 1.0)
    assert e.no_input_at is not None and e.no_input_at > 2.0


def test_typed_keys_rearm_with_the_inter_digit_gap_and_a_pin_is_never_shown() -> None:
    e = make(BILLING)
    play_all(e, e.start(0.0), 1.0)
    assert e.collect is not None and not e.sensitive  # the account number is not secret
    e.handle(ev.Key("4"), 2.0)
    assert e.no_input_at == 2.0 + e.collect.digit_timeout_s  # the entry ends after the gap, not 6 s
    out: list[fx.Effect] = []
    for d in "7192":
        out = e.handle(ev.Key(d), 2.5)
    assert any("PIN" in t for t in said(out))
    play_all(e, out, 4.0)
    assert e.sensitive
    (note,) = [n for n in of(fx.Note, e.handle(ev.Key("1"), 5.0)) if n.kind == "dtmf"]
    assert note.data["digit"] == "<redacted>"


def test_an_llm_that_fails_takes_the_steps_error_path_and_one_that_hangs_is_stopped() -> None:
    e = make(ASSISTANT)
    started = e.start(0.0)
    (ask,) = of(fx.AskLlm, started)
    assert "Corner Hardware" in ask.instructions and ask.messages == ()
    out = e.handle(ev.LlmDone(ask.req, False, "RuntimeError: the client crashed"), 1.0)
    assert any(n.kind == "llm_failed" for n in of(fx.Note, out))
    assert of(fx.Transfer, out) or of(fx.Speak, out)  # the plan's error path, not a wait for ever
    e2 = make(ASSISTANT)
    (ask2,) = of(fx.AskLlm, e2.start(0.0))
    deadline = e2.next_deadline()
    assert deadline == e2.cfg.llm_first_sentence_s
    hung = e2.on_timer(deadline)
    assert fx.CancelLlm(ask2.req) in hung
    assert e2.handle(ev.LlmSentence(ask2.req, "Too late."), 20.0) == []


def test_an_llm_reply_is_heard_before_the_callers_timer_and_keys_interrupt_it() -> None:
    e = make(ASSISTANT)
    started = e.start(0.0)
    (welcome,) = of(fx.Speak, started)
    (ask,) = of(fx.AskLlm, started)
    first = of(fx.Speak, e.handle(ev.LlmSentence(ask.req, "Hello there."), 0.5))[0]
    second = of(fx.Speak, e.handle(ev.LlmSentence(ask.req, "How can I help?"), 0.6))[0]
    e.handle(ev.LlmDone(ask.req, True), 0.7)
    assert e.no_input_at is None  # still playing
    e.handle(ev.Played(welcome.mark), 1.5)
    e.handle(ev.Played(first.mark), 2.0)
    e.handle(ev.Played(second.mark), 3.0)
    assert e.no_input_at == 9.0  # heard in full: now the caller's turn
    # The caller presses a key while the next reply is being spoken: it stops, and the LLM hears it.
    (ask2,) = of(fx.AskLlm, e.handle(ev.Key("5"), 4.0))
    e.handle(ev.LlmSentence(ask2.req, "Let me check."), 4.5)
    out = e.handle(ev.Key("1"), 5.0)
    assert of(fx.StopSpeech, out) and fx.CancelLlm(ask2.req) in out
    (ask3,) = of(fx.AskLlm, out)
    assert ask3.messages[-3:] == (
        ("user", "(pressed 5)"),
        ("assistant", "Let me check."),
        ("user", "(pressed 1)"),
    )
    assert e.handle(ev.LlmSentence(ask2.req, "Stale."), 5.1) == []  # the interrupted reply is over


def test_a_tool_that_overruns_is_cancelled_and_takes_the_error_path() -> None:
    plan = parse(
        "id: t\nversion: 1\nintegrations:\n"
        "  crm: {base_url: 'http://127.0.0.1:9/api', timeout_s: 1, retries: 0}\n"
        "steps:\n  look:\n    tool: {integration: crm, path: /x, on_error: sorry}\n"
        "  ok:\n    hangup: Done.\n  sorry:\n    hangup: Sorry.\n",
        "t.yaml",
    )
    e = make(plan)
    (call,) = of(fx.CallTool, e.start(0.0))
    assert len(call.key) == 32
    out = e.on_timer(e.next_deadline() or 0.0)
    assert fx.CancelTool(call.req) in out and said(out) == ["Sorry."]
    assert e.handle(ev.ToolDone(call.req, True, {}), 30.0) == []  # late: dropped


def test_a_call_resumes_from_its_checkpoint_with_an_apology_and_the_step_again() -> None:
    e = make(BILLING)
    play_all(e, e.start(0.0), 1.0)
    for d in "47192":
        out = e.handle(ev.Key(d), 2.0)
    checkpoint = of(fx.Checkpoint, out)[-1].state
    json.dumps(checkpoint)  # it crosses the IPC as JSON
    resumed = make(BILLING, resume=Resume(checkpoint, deaths=1))
    again = resumed.start(10.0)
    assert said(again)[0] == RESUME_APOLOGY and "PIN" in said(again)[1]
    assert resumed.it.state.variables["account"] == "47192"  # what the caller gave is kept
    assert resumed.req > e.req - 1  # request ids go on (late answers to the old ones mean nothing)


def test_a_call_that_kills_its_worker_twice_at_the_same_step_goes_to_a_person_or_is_ended() -> None:
    e = make(EXAMPLE)
    started = e.start(0.0)
    checkpoint = of(fx.Checkpoint, started)[-1].state
    gave_up = make(EXAMPLE, resume=Resume(checkpoint, deaths=2)).start(5.0)
    assert "technical difficulties" in said(gave_up)[0]
    (speak,) = of(fx.Speak, gave_up)
    e2 = make(EXAMPLE, resume=Resume(checkpoint, deaths=2))
    e2.start(5.0)
    assert of(fx.Hangup, e2.handle(ev.Played(speak.mark), 8.0)) == [fx.Hangup("bot_failed")]
    fallback = parse(
        (REPO / "dialplans" / "example.yaml")
        .read_text()
        .replace("  barge_in: true\n", "  barge_in: true\n  fallback_queue: support\n")
        .encode(),
        "example.yaml",
    )
    handed = make(fallback, resume=Resume(checkpoint, deaths=2)).start(5.0)
    assert of(fx.Transfer, handed)[0].queue == "support"


def test_a_tool_in_flight_when_the_worker_died_is_not_repeated_blindly() -> None:
    plan_text = (
        "id: t\nversion: 1\nintegrations:\n  crm: {base_url: 'http://127.0.0.1:9/api'}\n"
        "steps:\n  book:\n    tool: {integration: crm, method: POST, path: /book, on_error: sorry}\n"
        "  ok:\n    hangup: Booked.\n  sorry:\n    hangup: Sorry, I could not book that.\n"
    )
    e = make(parse(plan_text, "t.yaml"))
    started = e.start(0.0)
    (call,) = of(fx.CallTool, started)
    checkpoint = of(fx.Checkpoint, started)[-1].state
    assert checkpoint["tool_key"] == call.key
    resumed = make(parse(plan_text, "t.yaml"), resume=Resume(checkpoint)).start(3.0)
    assert not of(fx.CallTool, resumed)  # a POST may have booked already: never sent again
    assert said(resumed) == [RESUME_APOLOGY, "Sorry, I could not book that."]
    safe = parse(plan_text.replace("method: POST,", "method: POST, retry_safe: true,"), "t.yaml")
    e2 = make(safe)
    (call2,) = of(fx.CallTool, e2.start(0.0))
    (again,) = of(fx.CallTool, make(safe, resume=Resume(e2.checkpoint())).start(3.0))
    assert again.key == call2.key  # the same Idempotency-Key: the backend can tell it is a retry


def test_the_builtin_logic_is_a_dialplan() -> None:
    plan = builtin_plan("Hello.", {"1": "sales", "2": "support"}, {"sales": "sales", "help": "support"})
    e = make(plan)
    started = e.start(0.0)
    assert said(started) == ["Hello."]
    play_all(e, started, 0.5)
    assert said(e.handle(ev.Key("5"), 1.0)) == ["You pressed 5.", "What else can I do for you?"]
    out = e.handle(ev.Key("#"), 2.0)
    assert said(out) == ["Goodbye."]
    assert of(fx.Hangup, play_all(e, out, 3.0)) == [fx.Hangup("completed")]
    assert "Transferring you to sales." in plan_prompts(plan)


def test_fixed_texts_of_every_verb_reach_the_prompt_cache() -> None:
    texts = plan_prompts(plan_of("voicemail"))
    assert any("after the tone" in t for t in texts)  # a record step's prompt, asked of the verb
    assert all("{" not in t for t in texts)


def test_keys_that_answer_the_step_drop_what_the_caller_was_saying_meanwhile() -> None:
    """Saying "four" while keying the account number: the keys move the call on to the PIN; the
    decode of what was said must not answer the PIN step."""
    e = make(BILLING)
    play_all(e, e.start(0.0), 1.0)
    out = speech(e, 0.8, 2.0)  # a turn in progress, its decode asked
    notes: list[fx.Effect] = []
    for d in "47192":
        notes += e.handle(ev.Key(d), 3.5)
    assert e.it.state.variables["account"] == "47192"
    assert any(n.kind == "turn_dropped" for n in of(fx.Note, notes))
    late = answer_decodes(e, out, "four", 4.0)
    assert "pin" not in e.it.state.variables and not of(fx.Speak, late)
    assert not e.answering  # the PIN prompt's no-input timer is not held back


def test_a_failed_hand_over_after_giving_up_ends_with_an_apology_not_silence() -> None:
    fallback = parse(
        (REPO / "dialplans" / "example.yaml")
        .read_text()
        .replace("  barge_in: true\n", "  barge_in: true\n  fallback_queue: support\n")
        .encode(),
        "example.yaml",
    )
    checkpoint = of(fx.Checkpoint, make(fallback).start(0.0))[-1].state
    e = make(fallback, resume=Resume(checkpoint, deaths=2))
    assert of(fx.Transfer, e.start(5.0))[0].queue == "support"
    out = e.handle(ev.TransferDone("support", False, 486, "Busy Here"), 6.0)
    (speak,) = of(fx.Speak, out)
    assert "technical difficulties" in speak.text
    assert of(fx.Hangup, e.handle(ev.Played(speak.mark), 9.0)) == [fx.Hangup("bot_failed")]
    ended = e.handle(ev.CallEnded("bye"), 9.1)
    assert next(n.kind for n in of(fx.Note, ended)) == "call_ended"  # still recorded after our hang-up


def test_a_call_that_reaches_its_maximum_length_is_ended_and_recorded() -> None:
    e = CallEngine(EXAMPLE, CallInfo(call_id="c"), EngineConfig(max_call_s=30))
    e.start(0.0)
    out = e.on_timer(30.0)
    assert fx.Hangup("max call duration") in out and e.next_deadline() is None
    assert any(n.kind == "call_ended" for n in of(fx.Note, e.handle(ev.CallEnded("bye"), 30.1)))


def test_a_checkpoint_of_another_plan_version_is_not_trusted() -> None:
    checkpoint = of(fx.Checkpoint, make(EXAMPLE).start(0.0))[-1].state
    resumed = make(BILLING, resume=Resume(checkpoint)).start(5.0)
    kinds = [n.kind for n in of(fx.Note, resumed)]
    assert "resume_plan_changed" in kinds and "resume_gave_up" in kinds


def test_a_resumed_step_does_not_count_as_progress() -> None:
    e = make(EXAMPLE)
    checkpoint = of(fx.Checkpoint, e.start(0.0))[-1].state
    resumed = make(EXAMPLE, resume=Resume(checkpoint))
    resumed.start(5.0)
    assert resumed.progress == checkpoint["progress"]  # the UA keeps counting deaths at this step
    resumed.handle(ev.Key("7"), 6.0)
    assert resumed.progress > checkpoint["progress"]


def _frames(engine: CallEngine, loud: bool, seconds: float, now: float) -> tuple[list[fx.Effect], float]:
    import numpy as np

    rng = np.random.default_rng(11)
    out: list[fx.Effect] = []
    for i in range(int(seconds / 0.02)):
        if loud:
            tone = np.sin(np.arange(160) * 2 * np.pi * 440 / 8000 + i) * 9000
            pcm = (tone + rng.integers(-1500, 1500, 160)).astype("<i2").tobytes()
        else:
            pcm = bytes(320)
        now += 0.02
        out += engine.handle(ev.Audio(pcm), now)
    return out, now


def _at_agent_input(e: CallEngine) -> float:
    started = e.start(0.0)
    (ask,) = of(fx.AskLlm, started)
    out = e.handle(ev.LlmSentence(ask.req, "How can I help?"), 0.5) + e.handle(ev.LlmDone(ask.req, True), 0.6)
    play_all(e, started + out, 1.0)
    return 1.0


def test_at_an_agent_step_the_llm_is_asked_at_the_pause_and_its_reply_adopted_when_the_turn_ends() -> None:
    e = make(ASSISTANT)
    now = _at_agent_input(e)
    out, now = _frames(e, True, 1.0, now)
    out2, now = _frames(e, False, 0.36, now)  # a pause: the turn so far is decoded
    (decode,) = of(fx.Decode, out + out2)
    early = e.handle(ev.Decoded(decode.req, Transcript("When do you close?", 0.9, 1.0, 0.1)), now)
    (ask,) = of(fx.AskLlm, early)
    assert ask.messages[-1] == ("user", "When do you close?") and "llm_early" in [
        n.kind for n in of(fx.Note, early)
    ]
    assert e.handle(ev.LlmSentence(ask.req, "We close at six."), now + 0.05) == []  # not said yet
    rest, now = _frames(e, False, 1.0, now)  # the turn ends: the guess was the whole turn
    assert not of(fx.AskLlm, rest), "no second request: the early one is the reply"
    assert said(rest) == ["We close at six."]
    (turn,) = [n for n in of(fx.Note, rest) if n.kind == "agent_turn"]
    assert turn.data["early"] is True


def test_an_early_llm_request_is_cancelled_when_the_caller_goes_on() -> None:
    e = make(ASSISTANT)
    now = _at_agent_input(e)
    out, now = _frames(e, True, 1.0, now)
    out2, now = _frames(e, False, 0.36, now)
    (decode,) = of(fx.Decode, out + out2)
    (ask,) = of(fx.AskLlm, e.handle(ev.Decoded(decode.req, Transcript("When do you", 0.9, 1.0, 0.1)), now))
    e.handle(ev.LlmSentence(ask.req, "We open at nine."), now)
    more, now = _frames(e, True, 0.5, now)  # "... close on Sunday?"
    assert fx.CancelLlm(ask.req) in more
    end, now = _frames(e, False, 1.0, now)
    final = answer_decodes(e, end, "When do you close on Sunday?", now)
    (ask2,) = of(fx.AskLlm, end + final)
    assert ask2.req != ask.req and ask2.messages[-1] == ("user", "When do you close on Sunday?")
    assert "We open at nine." not in said(end + final)


def test_a_claim_that_something_was_done_is_not_said_unless_a_tool_succeeded() -> None:
    e = make(ASSISTANT)
    (ask,) = of(fx.AskLlm, e.start(0.0))
    out = e.handle(ev.LlmSentence(ask.req, "I've booked you in for Tuesday."), 0.5)
    assert not of(fx.Speak, out) and [n.kind for n in of(fx.Note, out)] == ["llm_claim_dropped"]
    assert said(e.handle(ev.LlmSentence(ask.req, "Shall I book Tuesday for you?"), 0.6)) == [
        "Shall I book Tuesday for you?"
    ]
    e.it.state.agent_done = 1  # a tool of this agent step returned success
    assert said(e.handle(ev.LlmSentence(ask.req, "I've booked you in for Tuesday."), 0.7))


def test_an_early_llm_request_is_cancelled_when_the_call_moves_on_without_it() -> None:
    e = make(ASSISTANT)
    now = _at_agent_input(e)
    out, now = _frames(e, True, 1.0, now)
    out2, now = _frames(e, False, 0.36, now)
    (decode,) = of(fx.Decode, out + out2)
    (ask,) = of(
        fx.AskLlm, e.handle(ev.Decoded(decode.req, Transcript("When do you close", 0.9, 1.0, 0.1)), now)
    )
    moved = e.handle(ev.Key("0"), now + 0.1)  # the plan's "a person" key: a transfer, not an LLM turn
    assert fx.CancelLlm(ask.req) in moved and e.early is None
