"""Write spooled records to the database, in order, once it takes them again.

One retry loop for the database (the node's supervisor owns the task): look every ``interval_s``;
when a write fails, wait twice as long each time up to ``max_backoff_s`` and start again from the
oldest record, so records are written in the order they were spooled. A record that is already
there (its write committed but the reply was lost) is dropped from the spool without a second copy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from voicebot import metrics
from voicebot.db.repository import JobSpec
from voicebot.logs import get_logger
from voicebot.records import store
from voicebot.records.record import CallRecord
from voicebot.records.spool import Spool, SpoolError

log = get_logger(__name__)
JobsFor = Callable[[CallRecord], Sequence[JobSpec]]


async def flush_once(spool: Spool, url: str, jobs_for: JobsFor) -> int:
    """Write every spooled record, oldest first; raise at the first one the database refuses
    (it stays, with those after it). Returns how many were written."""
    written = 0
    for path in spool.pending():
        try:
            record = spool.load(path)
        except SpoolError as exc:
            spool.quarantine(path, str(exc))
            continue
        fresh = await store.save(url, record, jobs_for(record))
        spool.done(path)
        written += 1
        log.info("records.unspooled", call_id=record.call_id, duplicate=not fresh)
    return written


async def run(
    spool: Spool,
    url: str,
    jobs_for: JobsFor,
    stopping: asyncio.Event,
    interval_s: float = 2.0,
    max_backoff_s: float = 30.0,
) -> None:
    """Until ``stopping``, then one last pass (the node's last calls may have just been spooled)."""
    delay = interval_s
    while True:
        waiting = len(spool.pending())
        metrics.records_spooled(waiting)
        if waiting:
            try:
                await flush_once(spool, url, jobs_for)
                delay = interval_s
            except Exception as exc:  # the database is still away: keep the spool, look later
                delay = min(max_backoff_s, delay * 2)
                log.warning(
                    "records.flush_failed",
                    spooled=len(spool.pending()),
                    retry_in_s=delay,
                    error=f"{type(exc).__name__}: {str(exc)[:200]}",
                )
            metrics.records_spooled(len(spool.pending()))
        if stopping.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
