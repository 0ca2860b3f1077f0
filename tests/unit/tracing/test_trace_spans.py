"""Trace ids from call ids, and a call's turn spans from its event log (no exporter involved)."""

from __future__ import annotations

from voicebot import tracing


def test_the_trace_id_is_the_call_id_and_the_traceparent_names_the_root_span() -> None:
    call_id = "1ae785ef33204d5cb82317ff5761f4a6"
    assert f"{tracing.trace_id(call_id):032x}" == call_id
    parent = tracing.traceparent(call_id)
    assert parent == f"00-{call_id}-{tracing.root_span_id(call_id):016x}-01"
    assert tracing.trace_id("lost-abc") == tracing.trace_id("lost-abc") != 0  # not hex: hashed


def test_a_turn_span_ends_when_its_reply_went_out_and_its_stages_follow_each_other() -> None:
    events = [
        {"t": 0.03, "kind": "turn", "turn": 0, "greeting_ms": 30},
        {
            "t": 3.0,
            "kind": "transcript",
            "text": "sales",
            "audio_s": 1.2,
            "asr": "local",
            "end_to_decision_ms": 500,
        },
        {
            "t": 3.4,
            "kind": "turn",
            "turn": 1,
            "decided_by": "dialplan",
            "asr_final_ms": 480,
            "decision_ms": 500,
            "tts_first_audio_ms": 700,
            "reply_out_ms": 900,
        },
    ]
    spans = list(tracing._spans_of_turns(events))
    name, start, end, attrs = spans[0]
    assert name == "turn 1" and abs(start - 2.5) < 1e-9 and abs(end - 3.4) < 1e-9
    assert attrs["asr.provider"] == "local" and attrs["asr.audio_s"] == 1.2
    stages = [(n, round(s - start, 3), round(e - start, 3)) for n, s, e, _ in spans[1:]]
    assert stages == [
        ("asr", 0.0, 0.48),
        ("decision", 0.48, 0.5),
        ("tts.first_audio", 0.5, 0.7),
        ("playout", 0.7, 0.9),
    ]


def test_a_turn_without_a_reply_is_placed_from_its_transcript() -> None:
    events = [
        {"t": 5.0, "kind": "transcript", "text": "hm", "end_to_decision_ms": 600},
        {"t": 9.0, "kind": "turn", "turn": 2, "asr_final_ms": 550, "decision_ms": 600},
    ]
    (turn, *stages) = tracing._spans_of_turns(events)
    assert (
        abs(turn[1] - 4.4) < 1e-9
        and abs(turn[2] - 5.0) < 1e-9
        and [s[0] for s in stages] == ["asr", "decision"]
    )


def test_an_llm_span_carries_the_usage_of_its_reply() -> None:
    events = [
        {"kind": "agent_turn", "t": 1.0, "messages": 2},
        {"kind": "agent_reply", "t": 1.8, "sentences": 1, "ok": True},
        {"kind": "llm_usage", "t": 1.8, "model": "openai/m", "tokens_in": 50, "tokens_out": 7},
        {"kind": "agent_turn", "t": 3.0, "messages": 4},
        {"kind": "agent_reply", "t": 3.5, "sentences": 0, "ok": False},
    ]
    spans = list(tracing._paired(events, "agent_turn", "agent_reply", "llm", then="llm_usage"))
    assert [(s, e) for _, s, e, _ in spans] == [(1.0, 1.8), (3.0, 3.5)]
    assert spans[0][3]["voicebot.tokens_in"] == 50 and spans[0][3]["voicebot.model"] == "openai/m"
    assert "voicebot.tokens_in" not in spans[1][3]
