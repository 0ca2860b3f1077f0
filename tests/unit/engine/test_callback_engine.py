"""A `callback` step in the engine: one booking key per call and step (a resumed worker books the
same job), its result in the call's record, a booking that never answers takes the error path, and
a placed call starting at its entry (scripted events, no I/O)."""

from __future__ import annotations

from typing import Any

from voicebot.dialplan.plan import parse
from voicebot.engine import effects as fx
from voicebot.engine import events as ev
from voicebot.engine.engine import (
    BOOKING_BUDGET_S,
    RESUME_APOLOGY,
    CallEngine,
    CallInfo,
    EngineConfig,
    Resume,
)

PLAN = parse(
    "id: cb\nversion: 1\nsteps:\n"
    "  book:\n    callback: {number: '{caller}', after_s: 60, entry: back, keep: [topic], on_error: sorry}\n"
    "  ok:\n    hangup: Booked for {callback_at}.\n"
    "  sorry:\n    hangup: 'Sorry, no call back: {callback_status}.'\n"
    "  back:\n    say: Hello again about {topic}.\n"
    "  bye:\n    hangup: Bye.\n"
    "variables: {topic: returns}\n",
    "cb.yaml",
)


def make(resume: Resume | None = None, **info: Any) -> CallEngine:
    base = {"call_id": "c-9", "caller": "+12125550123", "called": "100", "today": "2026-12-07"}
    return CallEngine(PLAN, CallInfo(**{**base, **info}), EngineConfig(), resume)


def of(kind: type, effects: list[fx.Effect]) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


def test_a_booking_is_made_once_per_call_and_step_and_its_result_is_recorded() -> None:
    e = make()
    started = e.start(0.0)
    (booking,) = of(fx.BookCallback, started)
    assert booking.key == "callback:c-9:book:0"  # call, step, and the pass through it
    assert (booking.callback.number, booking.callback.after_s, booking.callback.entry) == (
        "+12125550123",
        60,
        "back",
    )
    assert booking.callback.variables == {"topic": "returns"}
    resumed = make(resume=Resume(e.checkpoint())).start(2.0)
    assert [s.text for s in of(fx.Speak, resumed)] == [RESUME_APOLOGY]
    assert of(fx.BookCallback, resumed)[0].key == booking.key  # the same job, never a second one
    done = e.handle(
        ev.ToolDone(booking.req, True, {"at": "2026-12-07 10:01", "number": "+12125550123", "job": 4}), 1.0
    )
    notes = [n for n in of(fx.Note, done) if n.kind == "callback"]
    assert notes and notes[0].data == {"ok": True, "at": "2026-12-07 10:01", "job": 4}
    assert [s.text for s in of(fx.Speak, done)] == ["Booked for 2026-12-07 10:01."]


def test_a_refused_or_silent_booking_takes_the_error_path() -> None:
    e = make()
    (booking,) = of(fx.BookCallback, e.start(0.0))
    out = e.handle(ev.ToolDone(booking.req, False, {"status": "refused", "error": "number refused"}), 1.0)
    assert [s.text for s in of(fx.Speak, out)] == ["Sorry, no call back: refused."]
    slow = make()
    slow.start(0.0)
    late = slow.on_timer(BOOKING_BUDGET_S + 0.1)
    assert [s.text for s in of(fx.Speak, late)] == ["Sorry, no call back: error."]


def test_a_placed_call_starts_at_its_entry_with_the_kept_variables() -> None:
    e = make(direction="outbound", entry="back", variables={"topic": "a late parcel"})
    started = e.start(0.0)
    assert [s.text for s in of(fx.Speak, started)] == ["Hello again about a late parcel.", "Bye."]
    assert any(n.kind == "outbound" and n.data["entry"] == "back" for n in of(fx.Note, started))
    assert e.it.state.variables["direction"] == "outbound"
    gone = make(direction="outbound", entry="removed_step")
    from_start = gone.start(0.0)
    assert of(fx.BookCallback, from_start)  # an entry the plan lost: its start, said in the record
    assert any(n.kind == "entry_unknown" for n in of(fx.Note, from_start))


def test_kept_variables_never_stand_for_what_the_call_back_sets_itself() -> None:
    e = make(
        direction="outbound", entry="back", caller="+12125550199", variables={"caller": "+1999", "topic": "x"}
    )
    e.start(0.0)
    assert e.it.state.variables["caller"] == "+12125550199" and e.it.state.variables["topic"] == "x"


def test_coming_back_to_the_step_books_anew_rather_than_getting_the_first_booking_back() -> None:
    again = parse(
        "id: again\nversion: 1\nsteps:\n"
        "  book:\n    callback: {after_s: 60, entry: bye}\n    next: more\n"
        "  more:\n    menu:\n      prompt: Press 1 to book another.\n"
        "      options: [{keys: '1', goto: book}]\n"
        "  bye:\n    hangup: Bye.\n",
        "again.yaml",
    )
    e = CallEngine(again, CallInfo(call_id="c-7", caller="+12125550123", called="100"), EngineConfig())
    (first,) = of(fx.BookCallback, e.start(0.0))
    e.handle(ev.ToolDone(first.req, True, {"at": "2026-12-07 10:01", "job": 1}), 1.0)
    (second,) = of(fx.BookCallback, e.handle(ev.Key("1", "rfc4733"), 2.0))
    assert second.key != first.key
    resumed = CallEngine(
        again,
        CallInfo(call_id="c-7", caller="+12125550123", called="100"),
        EngineConfig(),
        Resume(e.checkpoint()),
    ).start(3.0)
    assert [b.key for b in of(fx.BookCallback, resumed)] == [second.key]  # mid-booking: the same job
