from __future__ import annotations

import pytest

from voicebot.signaling.admission import AdmissionInput, Admit, Reject, admit, in_any, source_ip
from voicebot.signaling.params import TrunkParams

TRUNKS = [
    TrunkParams(name="pbx", allow=["10.0.0.0/24"]),
    TrunkParams(name="secure", allow=["192.0.2.7/32", "2001:db8::/32"], srtp="mandatory"),
]


def req(source: str, **kw: object) -> AdmissionInput:
    base = dict(
        source=source,
        original_source=None,
        draining=False,
        active_calls=0,
        max_calls=4,
        offers_crypto=False,
        offers_plain=True,
    )
    base.update(kw)
    return AdmissionInput(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "inp, expected",
    [
        (req("10.0.0.9"), Admit("pbx")),
        (req("10.0.1.9"), Reject(403, "Forbidden: source not on any trunk allowlist")),
        (req("not-an-ip"), Reject(403, "Forbidden: source not on any trunk allowlist")),
        (req("10.0.0.9", draining=True), Reject(503, "Service Unavailable: draining")),
        (req("10.0.0.9", active_calls=4), Reject(486, "Busy Here")),
        (req("192.0.2.7"), Reject(488, "Not Acceptable Here: SRTP required")),
        (req("192.0.2.7", offers_crypto=True), Admit("secure")),
        (req("2001:db8::5", offers_crypto=True, offers_plain=False), Admit("secure")),
        (
            req("10.0.0.9", offers_crypto=True, offers_plain=False),
            Reject(488, "Not Acceptable Here: SRTP disabled on this trunk"),
        ),
    ],
)
def test_direct_admission(inp: AdmissionInput, expected: Admit | Reject) -> None:
    assert admit(inp, TRUNKS, behind_edge=False, edge_sources=[]) == expected


def test_forbidden_source_wins_over_draining() -> None:
    assert admit(req("8.8.8.8", draining=True), TRUNKS, False, []).code == 403  # type: ignore[union-attr]


def test_behind_edge_only_the_edge_may_send_and_trunk_comes_from_its_header() -> None:
    edge = ["127.0.0.0/8"]
    assert admit(req("10.0.0.9"), TRUNKS, True, edge) == Reject(403, "Forbidden: not from the SIP edge")
    assert admit(req("127.0.0.1", original_source="10.0.0.3"), TRUNKS, True, edge) == Admit("pbx")


def test_helpers() -> None:
    assert source_ip("10.1.2.3:5060") == "10.1.2.3"
    assert source_ip("[2001:db8::1]:5060") == "2001:db8::1"
    assert in_any("10.0.0.1", ["10.0.0.0/8"]) and not in_any("10.0.0.1", ["2001:db8::/32"])
