"""The dialer's requests to the UA workers (real files in a temp spool, no SIP): every submission
has its own id, so a deferred job never reads an old outcome, and a request nobody claimed is taken
back when the dialer stops waiting, so it can never ring late."""

from __future__ import annotations

import asyncio
import datetime as dt
import stat
from pathlib import Path

import pytest

from voicebot.outbound import dialer as dialer_mod
from voicebot.outbound.dialer import Dialer
from voicebot.outbound.settings import DialTrunk, OutboundSettings
from voicebot.outbound.spool import Spool

TRUNK = DialTrunk(name="carrier", dial="sip:{number}@192.0.2.10", max_calls=2, cps=100.0)
ALWAYS = OutboundSettings(enabled=True, calling_hours="00:00-24:00", timezone="UTC")
PAYLOAD = {"number": "+12125550123", "trunk": "carrier", "dialplan": "cb.yaml", "entry": "back"}


def test_the_spool_is_private_to_the_node(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "outbound").ensure()
    for d in (spool.root, spool.queue, spool.claimed, spool.outcomes):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_a_cancelled_wait_takes_the_request_back_and_a_new_submission_has_a_new_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "outbound")
    dialer = Dialer(ALWAYS, [TRUNK], spool)

    async def submit_then_cancel() -> str:
        task = asyncio.create_task(dialer.place(7, 1, PAYLOAD), name="dial-7")
        while not list(spool.queue.glob("*.json")):
            await asyncio.sleep(0.01)
        (queued,) = spool.queue.glob("*.json")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return queued.stem

    first = asyncio.run(submit_then_cancel())
    assert not list(spool.queue.glob("*.json")), "withdrawn: no UA worker can claim it later"
    second = asyncio.run(submit_then_cancel())
    assert first.startswith("job7-1-") and second.startswith("job7-1-") and first != second


def test_an_unclaimed_request_is_deferred_not_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dialer_mod, "CLAIM_WAIT_S", 0.2)
    spool = Spool(tmp_path / "outbound")
    dialer = Dialer(ALWAYS, [TRUNK], spool)
    with pytest.raises(dialer_mod.Deferred, match="no UA worker"):
        asyncio.run(dialer.place(8, 1, PAYLOAD))
    assert not list(spool.queue.glob("*.json"))


def test_a_call_far_past_its_promised_time_is_given_up_not_placed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "outbound")
    dialer = Dialer(ALWAYS, [TRUNK], spool)
    promised = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    with pytest.raises(dialer_mod.DialFailed, match="past its time") as failed:
        asyncio.run(dialer.place(9, 1, {**PAYLOAD, "at": promised.isoformat()}))
    assert failed.value.permanent and not list(spool.queue.glob("*.json"))
    # The third attempt of a call promised 55 min ago waited 300 + 600 s for its retries: not late.
    third = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=55)
    assert dialer._late_s({"at": third.isoformat()}, 3, dt.datetime.now(dt.UTC)) < ALWAYS.max_late_s
    assert dialer._late_s({}, 1, dt.datetime.now(dt.UTC)) == 0.0  # booked before promises were kept
