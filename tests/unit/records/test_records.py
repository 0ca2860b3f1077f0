"""A call's record from its events (pure), and the spool's order and safety on a real directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from voicebot.ipc import proto
from voicebot.records import record
from voicebot.records.spool import Spool, SpoolError

T0 = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
START = proto.CallStart(call_id="c", sip_call_id="s", caller="+49301", callee="100", trunk="t", dialplan="p")


def test_build_keeps_the_kept_events_at_their_times_and_derives_the_disposition() -> None:
    events = [
        {"kind": "speech_start", "t": 1.0},  # not kept
        {"kind": "transcript", "t": 2.5, "text": "billing please"},
        {"kind": "transfer_result", "t": 4.0, "ok": True, "queue": "billing"},
        {"kind": "call_ended", "t": 5.0, "reason": "transferred"},
    ]
    rec = record.build(START, T0, events, events_at=T0 + dt.timedelta(seconds=10))
    assert [e.kind for e in rec.events] == ["transcript", "transfer_result", "call_ended"]
    assert rec.events[0].at == T0 + dt.timedelta(seconds=12.5)
    assert (rec.disposition, rec.transfer_queue, rec.end_reason) == ("transferred", "billing", "transferred")
    assert rec.ended_at == T0 + dt.timedelta(seconds=15) and rec.caller == "+49301"
    assert record.CallRecord.model_validate_json(rec.model_dump_json()) == rec  # spoolable as is


def test_redact_pii_drops_the_number_and_every_text() -> None:
    rec = record.build(
        START, T0, [{"kind": "transcript", "t": 1, "text": "my card is 4111"}], redact_pii=True
    )
    assert rec.caller == "" and rec.events[0].data["text"] == record.REDACTED


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([{"kind": "hangup_request", "t": 1}], "bot_hung_up"),
        ([{"kind": "call_ended", "t": 1, "reason": "remote BYE"}], "caller_hung_up"),
        ([], "ended"),
    ],
)
def test_disposition(events: list[dict[str, object]], expected: str) -> None:
    assert record.disposition(events)[0] == expected  # type: ignore[arg-type]


def test_fields_longer_than_their_columns_are_cut() -> None:
    long = START.model_copy(update={"caller": "9" * 300, "sip_call_id": "x" * 400})
    rec = record.build(long, T0, [])
    assert (len(rec.caller), len(rec.sip_call_id)) == (128, 255)


def test_a_lost_call_gets_the_same_id_each_time() -> None:
    a = record.lost("sip-1", 2, "UA worker died", T0)
    b = record.lost("sip-1", 2, "UA worker died", T0 + dt.timedelta(seconds=5))
    assert a.call_id == b.call_id and a.call_id.startswith("lost-") and len(a.call_id) <= 32
    assert a.disposition == "failed"


def test_the_spool_gives_records_back_oldest_first_and_sets_bad_files_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.pending() == []
    paths = [spool.put(record.build(START.model_copy(update={"call_id": f"c{i}"}), T0, [])) for i in range(5)]
    assert spool.pending() == paths
    assert [spool.load(p).call_id for p in spool.pending()] == [f"c{i}" for i in range(5)]
    assert not list((tmp_path / "spool").glob(".*"))  # no temporary file left behind
    assert all(p.stat().st_mode & 0o077 == 0 for p in paths)  # callers' numbers and words: private
    assert (tmp_path / "spool").stat().st_mode & 0o077 == 0
    assert spool.pending(min_age_s=60) == []  # just written: maybe still on its way to the database
    bad = tmp_path / "spool" / "00-bad.json"
    bad.write_bytes(b'{"call_id": 1}')
    with pytest.raises(SpoolError, match=r"00-bad\.json"):
        spool.load(bad)
    spool.quarantine(bad, "not a record")
    assert (tmp_path / "spool" / "bad" / "00-bad.json").exists() and bad not in spool.pending()
    spool.done(paths[0])
    assert spool.pending() == paths[1:]
