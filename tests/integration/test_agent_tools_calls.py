"""An LLM that acts, on real calls: dialplans/reschedule.yaml with a scripted OpenAI-compatible model
(deterministic tool calls, a real HTTP server litellm talks to) and a real calendar HTTP server.
The caller asks (key 5), the bot reads the change back, the caller presses 1 (yes) or 2 (no); the
calendar is called once, or not at all; success is spoken only after it answered ok; a calendar
500 makes the plan say so and hand over, and the call record says tool failure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.jsonapi import JsonApi, Response
from support.net import free_port
from support.peers import REPO, call_bot, queue_peer
from support.scripted_llm import Reply, serve

from voicebot.records.classify import classify

pytestmark = pytest.mark.integration
MOVE = {"booking_ref": "AB12CD", "new_date": "2026-12-08", "new_time": "15:00"}


def clinic_model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
    """The "model": greets, asks for the move when the caller has spoken (a key here), then says
    what the tool result tells it."""
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        result = json.loads(last["content"])
        if result.get("ok"):
            return Reply(text=f"Done. Your confirmation is {result.get('confirmation')}.")
        return Reply(text="All right, I have not changed anything.")
    if last.get("role") == "user":
        return Reply(tool="move_appointment", arguments=MOVE)
    return Reply(text="What would you like to move?")


def calendar(status: int) -> JsonApi:
    """The clinic's calendar: moves answer MV-7781, or every request fails with ``status``."""
    return JsonApi(
        lambda _: Response({"reference": "MV-7781"} if status == 200 else {"error": "down"}, status)
    )


@pytest.fixture
def calendar_ok() -> Iterator[JsonApi]:
    with calendar(200) as api:
        yield api


@pytest.fixture
def calendar_down() -> Iterator[JsonApi]:
    with calendar(500) as api:
        yield api


def start(voicebot: Any, tmp_path: Path, api: JsonApi, llm: dict[str, str], **env: str) -> Any:
    base = f"{api.url}/v1"
    plan = tmp_path / "reschedule.yaml"
    plan.write_text(
        (REPO / "dialplans" / "reschedule.yaml")
        .read_text()
        .replace("https://calendar.example.internal/v1", base)
    )
    return voicebot(
        VOICEBOT_CALL__LOGIC="dialplan",
        VOICEBOT_ROUTES=json.dumps([{"match": "*", "dialplan": str(plan)}]),
        VOICEBOT_TOOLS_ALLOW=json.dumps([base]),
        CALENDAR_KEY="cal-s3cret",
        **{f"VOICEBOT_LLM__{k.upper()}": v for k, v in llm.items()},
        **env,
    )


def test_a_confirmed_move_calls_the_calendar_once_and_success_is_spoken_after_it(
    voicebot: Any, tmp_path: Path, calendar_ok: JsonApi
) -> None:
    with serve(clinic_model) as llm:
        server = start(voicebot, tmp_path, calendar_ok, {"model": "openai/clinic", "api_base": llm.api_base})
        # welcome ~3 s, the model's question ~2 s; key 5 asks for the move; the read-back takes ~5 s
        caller = call_bot(tmp_path, server.port, "--dtmf", "5@6", "1@12", "--duration", "30")
        caller.result(timeout=60)
        (rec,) = server.records(expect=1)
    events = rec["events"]
    plays = [e["text"] for e in events if e["kind"] == "play"]
    readback = "I will move booking AB12CD to 2026-12-08 at 15:00. Shall I go ahead?"
    assert readback in plays, plays
    assert len(calendar_ok.seen) == 1, "called once, after the yes"
    (hit,) = calendar_ok.seen
    assert hit.path == "/v1/appointments/AB12CD/move"
    assert hit.body == {"date": "2026-12-08", "time": "15:00"}
    assert hit.headers["X-Api-Key"] == "cal-s3cret" and hit.headers["Idempotency-Key"]
    done = plays.index("Done. Your confirmation is MV-7781.")
    assert done > plays.index(readback)
    tool_result = next(i for i, e in enumerate(events) if e["kind"] == "tool_result")
    spoken = next(i for i, e in enumerate(events) if e["kind"] == "play" and e["text"].startswith("Done."))
    assert spoken > tool_result and events[tool_result]["ok"], (
        "success spoken only after the calendar said ok"
    )
    audit = [e for e in events if e["kind"] == "agent_tool"]
    assert [a["outcome"] for a in audit] == ["accepted", "confirmed"]
    assert audit[0]["arguments"] == MOVE
    usage = [e for e in events if e["kind"] == "llm_usage"]
    assert usage and all(u["model"] == "openai/clinic" and u["tokens_in"] > 0 for u in usage)
    verdict = classify(events)
    assert (verdict.outcome, verdict.failure_class) == ("completed", "completed"), verdict
    assert "cal-s3cret" not in server.log()


def test_no_calls_nothing(voicebot: Any, tmp_path: Path, calendar_ok: JsonApi) -> None:
    with serve(clinic_model) as llm:
        server = start(voicebot, tmp_path, calendar_ok, {"model": "openai/clinic", "api_base": llm.api_base})
        caller = call_bot(tmp_path, server.port, "--dtmf", "5@6", "2@12", "--duration", "22")
        caller.result(timeout=60)
        (rec,) = server.records(expect=1)
    assert calendar_ok.seen == []
    plays = [e["text"] for e in rec["events"] if e["kind"] == "play"]
    assert "All right, I have not changed anything." in plays
    # (the scripted model asks again when the caller then stays silent; the call ends before a yes)
    assert [a["outcome"] for a in rec["events"] if a["kind"] == "agent_tool"][:2] == ["accepted", "declined"]
    assert not any(e["kind"] == "tool_call" for e in rec["events"])


def test_a_down_primary_model_falls_back_and_a_failing_calendar_hands_over_honestly(
    voicebot: Any, tmp_path: Path, calendar_down: JsonApi
) -> None:
    queue_port = free_port()
    with serve(clinic_model) as llm:
        server = start(
            voicebot,
            tmp_path,
            calendar_down,
            {
                "model": "openai/primary",
                "api_base": f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
                "fallbacks": json.dumps([{"model": "openai/clinic", "api_base": llm.api_base}]),
            },
            VOICEBOT_QUEUES=json.dumps({"support": f"sip:support@127.0.0.1:{queue_port}"}),
        )
        queue = queue_peer(tmp_path, queue_port, "--hold", "1", "--duration", "40", "--max-calls", "1")
        caller = call_bot(tmp_path, server.port, "--dtmf", "5@6", "1@12", "--duration", "30")
        c, _ = caller.result(timeout=60), queue.result(timeout=60)
        (rec,) = server.records(expect=1)
    events = rec["events"]
    assert c["transferred_code"] == 200, [(e["kind"], e.get("t")) for e in events]
    usage = [e for e in events if e["kind"] == "llm_usage"]
    assert usage and usage[0]["model"] == "openai/clinic" and usage[0]["fallbacks"] == 1
    assert len(calendar_down.seen) == 2, "the integration's one retry on a 500, then no more"
    plays = [e["text"] for e in events if e["kind"] == "play"]
    assert "Sorry, I could not do that right now." in plays
    assert not any(p.startswith("Done.") for p in plays), "no success is spoken for a failed call"
    verdict = classify(events)
    assert (verdict.outcome, verdict.failure_class) == ("escalated", "tool_failure"), verdict


def test_a_repeated_first_question_is_answered_from_the_answer_cache(voicebot: Any, tmp_path: Path) -> None:
    """llm.answer_cache_ttl_s: two callers ask the same question (Whisper hears it); the model is
    asked once, the second caller hears the kept answer at once."""
    from support.speech import spoken_wav

    asked: list[str] = []

    def faq(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        last = messages[-1] if messages else {}
        if last.get("role") == "user":
            asked.append(str(last.get("content")))
            return Reply(text="We close at four on Sundays.")
        return Reply(text="How can I help?")

    question = tmp_path / "question.wav"
    spoken_wav(question, "When do you close on Sunday?")
    with serve(faq) as llm:
        server = voicebot(
            VOICEBOT_ASR__BACKEND="faster-whisper",
            VOICEBOT_CALL__LOGIC="dialplan",
            VOICEBOT_ROUTES=json.dumps(
                [{"match": "*", "dialplan": str(REPO / "dialplans" / "assistant.yaml")}]
            ),
            VOICEBOT_LLM__MODEL="openai/faq",
            VOICEBOT_LLM__API_BASE=llm.api_base,
            VOICEBOT_LLM__ANSWER_CACHE_TTL_S="600",
        )
        for i in range(2):
            caller = call_bot(
                tmp_path,
                server.port,
                "--play",
                str(question),
                "--play-at",
                "5",
                "--duration",
                "14",
                name=f"c{i}",
            )
            caller.result(timeout=60)
        records = server.records(expect=2)
    assert len(asked) == 1, asked
    cached = [[e for e in rec["events"] if e["kind"] == "llm_usage" and e.get("cached")] for rec in records]
    assert sorted(len(c) for c in cached) == [0, 1]
    for rec in records:
        plays = [e["text"] for e in rec["events"] if e["kind"] == "play"]
        assert "We close at four on Sundays." in plays
