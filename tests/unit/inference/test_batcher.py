"""The decode queue's admission, deadlines and batching (a scripted decoder: pure queue logic)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from voicebot.asr.base import AsrError, Transcript
from voicebot.inference.batcher import DecodeQueue, Expired, Overloaded


class Decoder:
    """Decodes "text" as its own bytes; holds each batch until released."""

    def __init__(self, hold: bool = False, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.started = threading.Event()
        if not hold:
            self.gate.set()
        self.fail = fail

    def transcribe_many(self, requests: Sequence[tuple[bytes, int, str]]) -> list[Transcript]:
        self.started.set()
        self.gate.wait(10)
        self.batches.append([pcm.decode() for pcm, _, _ in requests])
        if self.fail:
            raise AsrError("model broke")
        return [Transcript(pcm.decode(), 0.9, 1.0, 0.1) for pcm, _, _ in requests]


async def test_requests_that_queue_during_a_decode_go_together() -> None:
    dec = Decoder(hold=True)
    q = DecodeQueue(dec, max_queue=8, batch_max=8)
    first = asyncio.create_task(q.transcribe(b"one", 8000, "", 5))
    await asyncio.to_thread(dec.started.wait, 5)
    rest = [asyncio.create_task(q.transcribe(t.encode(), 8000, "", 5)) for t in ("two", "three", "four")]
    await asyncio.sleep(0.05)
    dec.gate.set()
    texts = [r.text for r in await asyncio.gather(first, *rest)]
    q.close()
    assert texts == ["one", "two", "three", "four"]
    assert dec.batches == [["one"], ["two", "three", "four"]]
    assert q.stats.batch_sizes == {1: 1, 3: 1}


async def test_batches_are_capped() -> None:
    dec = Decoder(hold=True)
    q = DecodeQueue(dec, max_queue=8, batch_max=2)
    first = asyncio.create_task(q.transcribe(b"0", 8000, "", 5))
    await asyncio.to_thread(dec.started.wait, 5)
    rest = [asyncio.create_task(q.transcribe(str(i).encode(), 8000, "", 5)) for i in range(1, 6)]
    await asyncio.sleep(0.05)
    dec.gate.set()
    await asyncio.gather(first, *rest)
    q.close()
    assert [len(b) for b in dec.batches] == [1, 2, 2, 1]


async def test_a_full_queue_refuses_at_once() -> None:
    dec = Decoder(hold=True)
    q = DecodeQueue(dec, max_queue=2, batch_max=8)
    busy = asyncio.create_task(q.transcribe(b"busy", 8000, "", 5))
    await asyncio.to_thread(dec.started.wait, 5)
    waiting = [asyncio.create_task(q.transcribe(b"w", 8000, "", 5)) for _ in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded):
        await q.transcribe(b"more", 8000, "", 5)
    dec.gate.set()
    await asyncio.gather(busy, *waiting)
    q.close()
    assert q.stats.refused == 1


async def test_a_request_past_its_deadline_is_not_decoded() -> None:
    dec = Decoder(hold=True)
    q = DecodeQueue(dec, max_queue=8, batch_max=8)
    busy = asyncio.create_task(q.transcribe(b"busy", 8000, "", 5))
    await asyncio.to_thread(dec.started.wait, 5)
    late = asyncio.create_task(q.transcribe(b"late", 8000, "", 0.05))
    await asyncio.sleep(0.15)
    dec.gate.set()
    await busy
    with pytest.raises(Expired):
        await late
    q.close()
    assert dec.batches == [["busy"]] and q.stats.expired == 1


async def test_a_failed_batch_fails_its_requests_and_the_queue_goes_on() -> None:
    dec = Decoder(fail=True)
    q = DecodeQueue(dec)
    with pytest.raises(AsrError, match="model broke"):
        await q.transcribe(b"x", 8000, "", 5)
    dec.fail = False
    assert (await q.transcribe(b"y", 8000, "", 5)).text == "y"
    q.close()


async def test_waiting_turns_are_shared_between_decoders() -> None:
    dec = Decoder(hold=True)
    q = DecodeQueue(dec, max_queue=16, batch_max=8, decoders=2)
    busy = [asyncio.create_task(q.transcribe(f"b{i}".encode(), 8000, "", 5)) for i in range(2)]
    await asyncio.sleep(0.05)  # both decoders hold a batch
    rest = [asyncio.create_task(q.transcribe(str(i).encode(), 8000, "", 5)) for i in range(4)]
    await asyncio.sleep(0.05)
    dec.gate.set()
    await asyncio.gather(*busy, *rest)
    q.close()
    assert max(len(b) for b in dec.batches) == 2  # the four are shared out, not one batch of four


async def test_turns_ending_together_are_gathered_into_one_batch() -> None:
    dec = Decoder()
    q = DecodeQueue(dec, max_queue=16, batch_max=8, gather_s=0.1)
    first = asyncio.create_task(q.transcribe(b"a", 8000, "", 5))
    await asyncio.sleep(0.02)  # within the gather window
    second = asyncio.create_task(q.transcribe(b"b", 8000, "", 5))
    await asyncio.gather(first, second)
    q.close()
    assert dec.batches == [["a", "b"]]


async def test_an_expired_request_is_answered_at_its_deadline_not_after_the_busy_decode() -> None:
    dec = Decoder(hold=True)
    q = DecodeQueue(dec, max_queue=8, batch_max=8)
    busy = asyncio.create_task(q.transcribe(b"busy", 8000, "", 5))
    await asyncio.to_thread(dec.started.wait, 5)
    with pytest.raises(Expired):
        await asyncio.wait_for(q.transcribe(b"late", 8000, "", 0.05), 1.0)  # the decoder is still busy
    assert q.depth == 0
    dec.gate.set()
    await busy
    q.close()
    assert dec.batches == [["busy"]]


async def test_the_gather_window_runs_from_the_oldest_requests_arrival() -> None:
    """A request that has waited longer than the window (by the queue's clock) is not held back."""
    now = [0.0]
    dec = Decoder()
    q = DecodeQueue(dec, max_queue=8, batch_max=8, clock=lambda: now[0], gather_s=10.0)
    first = asyncio.create_task(q.transcribe(b"a", 8000, "", 100))
    await asyncio.sleep(0.05)  # the decoder is in the window of "a" (10 s by the clock)
    now[0] = 50.0  # "a" has now waited 50 s: the window is long over
    second = asyncio.create_task(q.transcribe(b"b", 8000, "", 100))
    await asyncio.wait_for(asyncio.gather(first, second), 3)
    q.close()
    assert dec.batches == [["a", "b"]]
