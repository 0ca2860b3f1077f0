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


U = "sip:10.0.0.2:5080"


def live_tracker(outage_s: float = 100.0) -> BackendTracker:
    """A tracker that has seen U go live; the table is read every second or so in these tests
    (outage_s: a gap between reads that counts as the database being away)."""
    t = BackendTracker(stale_after_s=3, forget_after_s=30, end_grace_s=2, outage_s=outage_s)
    t.update([row(1)], now=0.0)
    t.update([row(2)], now=1.0)
    assert t.live() == [U]
    return t


def test_a_node_that_stops_beating_is_taken_out_and_its_calls_ended_once_probes_fail_too() -> None:
    t = live_tracker()
    assert t.update([row(2)], now=3.9) == []
    assert t.update([row(2)], now=4.1, observed={U: True}) == [SetActive(U, False, "no beat for 3 s")]
    assert t.live() == []
    assert t.update([row(2)], now=5.0, observed={U: False}) == []
    assert t.update([row(2)], now=6.2, observed={U: False}) == [
        EndCalls(U, "node b stopped beating and does not answer", "b", 0)
    ]
    assert t.update([row(2)], now=8.0, observed={U: False}) == []  # once
    assert t.update([row(2)], now=31.5, observed={U: False}) == [Forget(U, 2)]
    assert t.update([], now=32.0, observed={U: False}) == [Remove(U)]


def test_a_node_only_cut_off_from_the_database_keeps_its_calls() -> None:
    t = live_tracker()
    t.update([row(2)], now=4.1, observed={U: False})
    for now in (5.0, 6.0, 7.0, 8.0):  # its UA worker keeps answering the probes
        out = t.update([row(2)], now=now, observed={U: True})
        assert out == [SetActive(U, False, "not offered by its node")], out
    assert t.update([row(3)], now=9.0, observed={U: False}) == [SetActive(U, True, "ready")]


def test_a_restarted_ua_worker_has_its_calls_ended_at_once() -> None:
    t = live_tracker()
    out = t.update([row(3, "starting")], now=1.5, observed={U: True})
    assert out == [
        SetActive(U, False, "starting"),
        EndCalls(U, "UA worker 0 of node b restarted", "b", 0),
    ]
    assert t.update([row(4, "starting")], now=2.0, observed={U: False}) == []


def test_a_node_that_dies_while_draining_has_its_calls_ended() -> None:
    t = live_tracker()
    assert t.update([row(3, "draining")], now=1.5) == [SetActive(U, False, "draining")]
    assert t.update([row(3, "draining")], now=4.6, observed={U: False}) == []
    ends = t.update([row(3, "draining")], now=6.7, observed={U: False})
    assert ends == [EndCalls(U, "node b stopped beating and does not answer", "b", 0)]


def test_a_database_outage_is_not_every_node_dying_at_once() -> None:
    t = live_tracker(outage_s=1.5)
    # 10 s without a readable table; the first read still has the old beat
    assert t.update([row(2)], now=11.0, observed={U: True}) == []
    assert t.live() == [U]
    assert t.update([row(3)], now=12.0, observed={U: True}) == []


def test_the_dispatcher_is_reconciled_with_the_table() -> None:
    t = live_tracker()
    # Kamailio restarted (or an add failed): the backend is missing there; a stray one is there
    out = t.update([row(3)], now=1.5, observed={"sip:10.9.9.9:5080": False})
    assert out == [Remove("sip:10.9.9.9:5080"), Add(U, "b.ua0", 4), SetActive(U, True, "ready")]


def test_an_address_taken_over_by_another_node_starts_over() -> None:
    t = live_tracker()
    moved = BackendRow(uri=U, node="c", ua_index=1, max_calls=2, free_slots=2, state="ready", beat=5)
    out = t.update([moved], now=1.5, observed={U: True})
    assert out == [
        EndCalls(U, "its address was taken by another UA worker", "b", 0),
        Remove(U),
        Add(U, "c.ua1", 2),
        SetActive(U, False, "not offered by its node"),  # until its new beat has moved
    ]


def test_a_draining_node_is_taken_out_without_ending_its_calls_then_removed_when_it_withdraws() -> None:
    t = BackendTracker(stale_after_s=3, forget_after_s=30)
    t.update([row(1)], now=0.0)
    t.update([row(2)], now=1.0)
    assert t.update([row(3, "draining")], now=2.0) == [SetActive("sip:10.0.0.2:5080", False, "draining")]
    assert t.update([row(4, "draining")], now=3.0) == []
    assert t.update([], now=4.0) == [Remove("sip:10.0.0.2:5080")]  # no EndCalls: its calls finished


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
    t = BackendTracker(stale_after_s=3, forget_after_s=30, outage_s=100)
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


@pytest.mark.parametrize(
    ("uri", "node", "ok"),
    [
        ("sip:10.0.0.2:5080", "b", True),
        ("sip:[fd00::2]:5080", "b", True),
        ("sip:node-b.example.internal:5080", "node-b.x", False),  # a name could resolve anywhere
        ("sip:192.168.1.2:5080", "b", False),  # outside the networks
        ("sip:" + "a." * 40 + "b:5080", "b", False),
        ("sip:10.0.0.2:5080;transport=tcp", "b", False),
        ("sip:10.0.0.2:99999", "b", False),
        ("sip:10.0.0.2 5080", "b", False),
        ('sip:10.0.0.2:5080" ; drop', "b", False),
        ("sips:10.0.0.2:5080", "b", False),
        ("sip:10.0.0.2:5080", "b;maxload=99", False),
        ("sip:10.0.0.2:5080", "", False),
    ],
)
def test_the_edge_checks_every_row_before_it_reaches_kamailio(uri: str, node: str, ok: bool) -> None:
    from voicebot.cluster.registry import problem

    nets = ["10.0.0.0/24", "fd00::/64"]
    r = BackendRow(uri=uri, node=node, ua_index=0, max_calls=4, free_slots=4, state="ready")
    assert (problem(r, nets) is None) is ok, problem(r, nets)
    assert problem(r, []) is not None  # no networks: nothing is accepted
    big = BackendRow(
        uri="sip:10.0.0.2:5080", node="b", ua_index=0, max_calls=400, free_slots=0, state="ready"
    )
    assert problem(big, nets)
    odd = BackendRow(uri="sip:10.0.0.2:5080", node="b", ua_index=0, max_calls=4, free_slots=0, state="x")
    assert problem(odd, nets)
