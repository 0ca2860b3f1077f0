"""The decode queue: bounded, with a deadline per request, decoded in batches on one model.

Requests wait in a queue of at most ``max_queue``; a request that would overflow it is refused at once
(:class:`Overloaded`, HTTP 503 with Retry-After) and one that waited past its deadline is dropped
unstarted (:class:`Expired`), so a caller's turn hears the reprompt within its budget instead of
seconds of silence. Decoder threads (one per core, each single-threaded) take what is waiting as
batches, shared fairly among the free decoders, after a short gather window that lets turns ending
together go together; requests that queued during a decode go together in the next one, where a
batch costs far less CPU than the same turns one by one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from voicebot.asr.base import Transcript
from voicebot.logs import get_logger

log = get_logger(__name__)


class Overloaded(Exception):
    """The queue is full: the client should try another replica or provider, or give up the turn."""


class Expired(Exception):
    """The request waited past its deadline and was not decoded."""


class BatchDecoder(Protocol):
    def transcribe_many(self, requests: Sequence[tuple[bytes, int, str]]) -> list[Transcript]: ...


@dataclass
class Stats:
    """Counts kept beside the Prometheus metrics (``on_batch``), for tests and debugging."""

    refused: int = 0
    expired: int = 0
    batch_sizes: collections.Counter[int] = field(default_factory=collections.Counter)


@dataclass
class _Job:
    pcm: bytes
    rate: int
    prompt: str
    deadline: float
    queued: float
    future: asyncio.Future[Transcript]
    loop: asyncio.AbstractEventLoop
    started: bool = False  # taken by a decoder (under the queue's lock)


class DecodeQueue:
    def __init__(
        self,
        decoder: BatchDecoder,
        max_queue: int = 32,
        batch_max: int = 8,
        clock: Callable[[], float] = time.monotonic,
        on_batch: Callable[[int, list[float]], None] | None = None,
        decoders: int = 1,
        gather_s: float = 0.0,
    ) -> None:
        self.decoder = decoder
        self.max_queue = max_queue
        self.batch_max = batch_max
        self.clock = clock
        self.on_batch = on_batch  # (size, each request's wait in s): metrics, from the decoder thread
        self.stats = Stats()
        self._jobs: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self.gather_s = gather_s
        self._threads = [
            threading.Thread(target=self._run, name=f"decoder-{i}", daemon=True) for i in range(decoders)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def depth(self) -> int:
        return len(self._jobs)

    async def transcribe(self, pcm: bytes, rate: int, prompt: str, deadline_s: float) -> Transcript:
        """Decode one turn; Overloaded when the queue is full, Expired when not started in time."""
        loop = asyncio.get_running_loop()
        now = self.clock()
        job = _Job(pcm, rate, prompt, now + deadline_s, now, loop.create_future(), loop)
        with self._cond:
            if len(self._jobs) >= self.max_queue or self._closed:
                self.stats.refused += 1
                raise Overloaded(f"{len(self._jobs)} decodes already waiting")
            self._jobs.append(job)
            self._cond.notify()
        # Not started by its deadline: dropped now, not when a decoder next looks (under load that
        # is a whole decode later); once started, it is decoded and answered.
        done, _ = await asyncio.wait({job.future}, timeout=deadline_s)
        if not done:
            with self._cond:
                if not job.started:
                    self._jobs.remove(job)
                    self.stats.expired += 1
                    raise Expired(f"waited {self.clock() - job.queued:.2f} s")
        return await job.future

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._jobs and not self._closed:
                self._cond.wait()
            # Callers' turns often end together (a round of calls, a shared prompt): a moment's wait
            # after the first lets them go in one batch instead of one alone and the rest after it.
            # The window runs from the oldest request's arrival: one that already waited out a busy
            # decoder is not held back again.
            while self.gather_s and self._jobs and not self._closed:
                left = self._jobs[0].queued + self.gather_s - self.clock()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._closed:
                return None
            now = self.clock()
            # Shared among the decoders, busy ones included (one is usually about to be free): two
            # single-threaded decoders with two turns each finish sooner than one with four, and
            # sooner than one with three after one with one (docs/inference.md).
            share = min(self.batch_max, -(-len(self._jobs) // len(self._threads)))
            batch: list[_Job] = []
            while self._jobs and len(batch) < share:
                job = self._jobs.popleft()
                if job.future.cancelled():
                    continue  # the client hung up
                if now > job.deadline:
                    self.stats.expired += 1
                    _settle(job, exc=Expired(f"waited {now - job.queued:.2f} s"))
                    continue
                job.started = True
                batch.append(job)
            if batch and self.on_batch is not None:
                self.on_batch(len(batch), [now - j.queued for j in batch])
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            if not batch:
                continue
            started = self.clock()
            try:
                results = self.decoder.transcribe_many([(j.pcm, j.rate, j.prompt) for j in batch])
            except Exception as exc:  # AsrError or a bug: every request of the batch hears of it
                log.error("infer.decode_failed", batch=len(batch), error=str(exc)[:300])
                for job in batch:
                    _settle(job, exc=exc)
                continue
            self.stats.batch_sizes[len(batch)] += 1
            log.debug(
                "infer.batch",
                size=len(batch),
                waited_ms=[round((started - j.queued) * 1000) for j in batch],
                decode_ms=round((self.clock() - started) * 1000),
            )
            for job, result in zip(batch, results, strict=True):
                _settle(job, result=result)


def _settle(job: _Job, result: Transcript | None = None, exc: BaseException | None = None) -> None:
    def apply() -> None:
        if job.future.done():
            return
        if exc is not None:
            job.future.set_exception(exc)
        else:
            assert result is not None
            job.future.set_result(result)

    with contextlib.suppress(RuntimeError):  # the server's loop is gone (shutdown)
        job.loop.call_soon_threadsafe(apply)
