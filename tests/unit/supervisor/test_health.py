"""/healthz and /readyz answers from the supervisor's view of its workers and the edge."""

from __future__ import annotations

from voicebot.supervisor.health import Snapshot, UAView, liveness, readiness

UP = UAView(alive=True, ready=True, free_slots=4)


def snap(*uas: UAView, **kw: object) -> Snapshot:
    base: dict[str, object] = {
        "now": 100.0,
        "loop_tick": 99.9,
        "draining": False,
        "edge_required": True,
        "edge_up": True,
    }
    base.update(kw)
    return Snapshot(uas=list(uas), **base)  # type: ignore[arg-type]


def test_ready_with_a_free_slot_on_a_ready_worker() -> None:
    status, body = readiness(snap(UP, UAView(alive=True, ready=False, free_slots=4)))
    assert status == 200 and body == {"ready": True, "free_slots": 4, "ua_workers_ready": 1, "ua_workers": 2}


def test_not_ready_while_starting_draining_full_or_without_the_edge() -> None:
    starting = UAView(alive=True, ready=False, free_slots=0)
    cases = {
        "no UA worker is ready": snap(starting),
        "draining": snap(UP, draining=True),
        "every call slot is taken": snap(UAView(alive=True, ready=True, free_slots=0)),
        "the SIP edge is not up": snap(UP, edge_up=False),
        "loop is stalled": snap(UP, loop_tick=80.0),
    }
    for why, s in cases.items():
        status, body = readiness(s)
        assert status == 503 and not body["ready"], why
        assert any(why in w for w in body["why"]), (why, body)
    # Without an edge (one UA worker listening itself), the edge does not matter.
    assert readiness(snap(UP, edge_required=False, edge_up=False))[0] == 200


def test_alive_unless_the_supervisor_loop_stalls() -> None:
    assert liveness(snap(UAView(alive=False, ready=False, free_slots=0), draining=True))[0] == 200
    status, body = liveness(snap(UP, loop_tick=90.0))
    assert status == 503 and "10.0 s" in body["why"][0]
