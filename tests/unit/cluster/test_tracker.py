"""The edge's tracker of nodes' UA workers: scripted table reads and times in, dispatcher changes out."""

from __future__ import annotations

import pytest

from voicebot.cluster.registry import BackendRow
from voicebot.cluster.tracker import Add, BackendTracker, EndCalls, Forget, Remove, SetActive


def row(beat: int, state: str = "ready", uri: str = "sip:10.0.0.2:5080", node: str = "b") -> BackendRow:
    return BackendRow(uri=uri, node=node, ua_index=0, max_calls=4, free_slots=4, state=state, beat=beat)


def test_a_new_row_is_added_inactive_and_goes_live_once_its_beat_moves() -> None:
    t = BackendTracker(stale_after_s=3, forget_after_s=30)
    assert t.update([row(7)], now=0.0) == [Add("sip:10.0.0.2:5080", "b.ua0", 4)]
    assert t.update([row(7)], now=0.5) == []  # a row left by a dead node looks like this forever
    assert t.update([row(8)], now=1.0) == [SetActive("sip:10.0.0.2:5080", True, "ready")]
    assert t.live() == ["sip:10.0.0.2:5080"]
    assert t.update([row(9)], now=2.0) == []


def test_a_node_that_stops_beating_is_taken_out_and_its_calls_ended() -> None:
    t = BackendTracker(stale_after_s=3, forget_after_s=30)
    t.update([row(1)], now=0.0)
    t.update([row(2)], now=1.0)
    assert t.update([row(2)], now=3.9) == []
    out = t.update([row(2)], now=4.1)
    assert out == [
        SetActive("sip:10.0.0.2:5080", False, "no beat for 3 s"),
        EndCalls("sip:10.0.0.2:5080", "node b stopped beating"),
    ]
    assert t.live() == []
    assert t.update([row(2)], now=20.0) == []
    assert t.update([row(2)], now=31.5) == [Forget("sip:10.0.0.2:5080")]
    assert t.update([], now=32.0) == [Remove("sip:10.0.0.2:5080")]


def test_a_draining_node_is_taken_out_without_ending_its_calls_then_removed_when_it_withdraws() -> None:
    t = BackendTracker(stale_after_s=3, forget_after_s=30)
    t.update([row(1)], now=0.0)
    t.update([row(2)], now=1.0)
    assert t.update([row(3, "draining")], now=2.0) == [SetActive("sip:10.0.0.2:5080", False, "draining")]
    assert t.update([row(4, "draining")], now=3.0) == []
    assert t.update([], now=4.0) == [Remove("sip:10.0.0.2:5080")]


def test_a_probe_that_revives_a_backend_its_node_does_not_offer_is_undone() -> None:
    t = BackendTracker(stale_after_s=3, forget_after_s=30)
    t.update([row(1, "starting")], now=0.0)
    assert t.update([row(2, "starting")], now=1.0) == []
    out = t.update([row(3, "starting")], now=2.0, observed={"sip:10.0.0.2:5080": True})
    assert out == [SetActive("sip:10.0.0.2:5080", False, "not offered by its node")]
    assert t.update([row(4)], now=3.0, observed={"sip:10.0.0.2:5080": False}) == [
        SetActive("sip:10.0.0.2:5080", True, "ready")
    ]


def test_two_nodes_are_followed_independently() -> None:
    a, b = "sip:10.0.0.1:5080", "sip:10.0.0.2:5080"
    t = BackendTracker(stale_after_s=3, forget_after_s=30)
    t.update([row(1, uri=a, node="a"), row(1, uri=b)], now=0.0)
    t.update([row(2, uri=a, node="a"), row(2, uri=b)], now=1.0)
    assert t.live() == [a, b]
    out = t.update([row(6, uri=a, node="a"), row(2, uri=b)], now=4.5)
    assert SetActive(b, False, "no beat for 3 s") in out and all(x.uri == b for x in out)
    assert t.live() == [a]


def test_duid_is_safe_for_the_dispatcher_attributes() -> None:
    t = BackendTracker(stale_after_s=3, forget_after_s=30)
    (add,) = t.update([row(1, node="host;maxload=99 x")], now=0.0)
    assert isinstance(add, Add) and add.duid == "host_maxload_99_x.ua0"


def test_forget_must_not_come_before_stale() -> None:
    with pytest.raises(ValueError):
        BackendTracker(stale_after_s=10, forget_after_s=5)
