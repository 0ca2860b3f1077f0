"""`voicebot loadtest` without SIP: conversation tests become caller scripts, results become rates
and percentiles, and an SLO file says what was missed (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.errors import ConfigError, VoicebotError
from voicebot.loadtest import slo
from voicebot.loadtest.results import CallResult, summarise, table
from voicebot.loadtest.run import local_address
from voicebot.loadtest.script import Action, Expect, from_tests

REPO = Path(__file__).resolve().parents[3]


def test_the_example_dialplans_tests_become_callers_with_their_expected_endings() -> None:
    scripts, skipped = from_tests(REPO / "dialplans" / "example.test.yaml")
    by_name = {s.name: s for s in scripts}
    assert not skipped
    sales = by_name["sales by voice"]
    assert sales.actions == (Action("speak", "Hi, I would like to talk to someone in sales please."),)
    assert sales.expect == Expect("transfer", "sales") and not sales.transfers_fail
    busy = by_name["queue busy, back to the menu, then goodbye"]
    assert [a.kind for a in busy.actions] == ["keys", "keys"] and busy.transfers_fail
    assert busy.expect == Expect("hangup")
    silent = by_name["not understood twice, then silence ends the call"]
    assert [a.kind for a in silent.actions] == ["speak", "speak", "silence"]


def test_tests_that_script_the_bots_side_are_left_out_with_the_reason(tmp_path: Path) -> None:
    scripts, skipped = from_tests(REPO / "dialplans" / "reschedule.test.yaml")
    assert skipped and all("bot's side" in s.why or "callback" in s.why or "inside" in s.why for s in skipped)
    assert len(scripts) + len(skipped) >= 1
    picked, _ = from_tests(REPO / "dialplans" / "example.test.yaml", ["support by key"])
    assert [s.name for s in picked] == ["support by key"]
    with pytest.raises(ConfigError, match="no test named 'nope'"):
        from_tests(REPO / "dialplans" / "example.test.yaml", ["nope"])
    bad = tmp_path / "bad.test.yaml"
    bad.write_text("tests: 3\n")
    with pytest.raises(ConfigError, match="expected `tests:`"):
        from_tests(bad)


def test_a_summary_has_rates_and_percentiles_and_an_slo_names_each_miss(tmp_path: Path) -> None:
    calls = [
        CallResult(
            "a",
            answered=True,
            setup_ms=20,
            greeting_ms=900,
            turn_gaps_ms=[1000, 1200],
            outcome="transfer",
            ok=True,
        ),
        CallResult(
            "b", answered=True, setup_ms=30, greeting_ms=1500, turn_gaps_ms=[3000], outcome="hangup", ok=True
        ),
        CallResult("c", sip_code=503, outcome="failed", why="not answered: 503"),
    ]
    s = summarise(calls, 12.0, 2)
    assert (s["calls"], s["answered"], s["as_expected"]) == (3, 2, 2)
    assert s["answer_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert s["greeting_ms"]["p50"] == 900 and s["greeting_ms"]["p95"] == 1500
    assert s["turn_gap_ms"]["p95"] == 3000 and s["turns"] == 3
    assert s["outcomes"] == {"failed": 1, "hangup": 1, "transfer": 1}
    assert "greeting ms" in table(s)
    path = tmp_path / "slo.yaml"
    path.write_text("answer_rate_min: 0.99\ngreeting_ms_p95_max: 2000\nturn_gap_ms_p95_max: 2500\n")
    assert slo.misses(slo.read(path), s) == [
        "answer_rate 66.67% < 99.00%",
        "turn_gap_ms p95 3000 ms > 2500 ms",
    ]
    path.write_text("greeting_ms_p95: 2000\n")
    with pytest.raises(ConfigError, match="greeting_ms_p95: Extra inputs"):
        slo.read(path)
    path.write_text("a: &a [*a]\n")
    with pytest.raises(VoicebotError, match="alias"):
        slo.read(path)


def test_a_loopback_target_is_called_from_loopback() -> None:
    assert local_address("sip:100@127.0.0.1:5060") == "127.0.0.1"
    assert local_address("sip:100@localhost") == "127.0.0.1"
    assert local_address("sip:100@192.0.2.5:5060") == ""


def test_a_run_is_shared_out_over_processes_of_at_most_three_calls() -> None:
    from voicebot.loadtest.run import Plan
    from voicebot.loadtest.shards import PER_SHARD, split

    assert PER_SHARD == 3
    shards = split(Plan("sip:100@127.0.0.1", concurrency=8, calls=20))
    assert [s.concurrency for s in shards] == [3, 3, 2] and sum(s.calls for s in shards) == 20
    assert [s.calls for s in split(Plan("sip:100@127.0.0.1", concurrency=2))] == [2]
    timed = split(Plan("sip:100@127.0.0.1", concurrency=4, duration_s=60))
    assert [(s.concurrency, s.calls, s.duration_s) for s in timed] == [(2, 0, 60), (2, 0, 60)]
    few = split(Plan("sip:100@127.0.0.1", concurrency=7, calls=2))
    assert sum(s.calls for s in few) == 2 and all(s.calls for s in few)  # no shard with nothing to do
    # a burst of 5 calls 20 s in: shards of its own on top of the level, all started at 20 s
    burst = split(Plan("sip:100@127.0.0.1", concurrency=2, duration_s=60), burst=5, burst_at_s=20)
    assert [(s.concurrency, s.calls, s.duration_s, s.start_delay_s) for s in burst] == [
        (2, 0, 60, 0.0),
        (3, 3, 0.0, 20),
        (2, 2, 0.0, 20),
    ]


def test_the_knee_plot_is_an_svg_with_a_line_per_series_and_a_point_per_level() -> None:
    import xml.etree.ElementTree as ET

    from voicebot.loadtest.plot import svg

    def level(n: int, greet: float, gap: float) -> dict[str, object]:
        calls = [
            CallResult("a", answered=True, greeting_ms=greet, turn_gaps_ms=[gap], outcome="hangup", ok=True)
        ]
        return summarise(calls, 10.0, n)

    drawn = ET.fromstring(svg([level(1, 300, 900), level(2, 320, 950), level(4, 700, 2100)], "a <b> & c"))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(drawn.findall(f"{ns}polyline")) == 4  # greeting and turn gap, p50 and p95
    assert len(drawn.findall(f"{ns}circle")) == 12
    assert any(t.text == "a <b> & c" for t in drawn.iter(f"{ns}text"))
