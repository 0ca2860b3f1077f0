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

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from voicebot import metrics
from voicebot.db.repository import JobSpec
from voicebot.logs import get_logger
from voicebot.records import store
from voicebot.records.record import CallRecord
from voicebot.records.spool import Spool, SpoolError

log = get_logger(__name__)
JobsFor = Callable[[CallRecord], Sequence[JobSpec]]


# A call worker asks the database for at most 5 s after spooling its record (and is killed 10 s
# after its call): younger files may still be on their way in, and are left to it.
IN_FLIGHT_S = 15.0


async def flush_once(spool: Spool, url: str, jobs_for: JobsFor, min_age_s: float = 0.0) -> int:
    """Write every spooled record, oldest first; raise at the first one the database cannot take
    now (it stays, with those after it). A record the database refuses for what it holds (too long
    a field, a broken value) is set aside in ``bad/``, never blocking the others. Returns how many
    were written."""
    written = 0
    for path in spool.pending(min_age_s):
        try:
            record = spool.load(path)
        except SpoolError as exc:
            spool.quarantine(path, str(exc))
            continue
        try:
            fresh = await store.save(url, record, jobs_for(record))
        except DBAPIError as exc:
            if not _refused_for_content(exc):
                raise  # the database is away or unwell: the record waits
            spool.quarantine(path, f"the database refused it: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        spool.done(path)
        written += 1
        log.info("records.unspooled", call_id=record.call_id, duplicate=not fresh)
    return written


def _refused_for_content(exc: DBAPIError) -> bool:
    """A data exception or a constraint violation (SQLSTATE class 22 or 23): this record, not the
    database. asyncpg's errors reach us as plain DBAPIError carrying the SQLSTATE."""
    if isinstance(exc, (DataError, IntegrityError)):
        return True
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    state = state or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return isinstance(state, str) and state[:2] in ("22", "23")


async def run(
    spool: Spool,
    url: str,
    jobs_for: JobsFor,
    stopping: asyncio.Event,
    interval_s: float = 2.0,
    max_backoff_s: float = 30.0,
) -> None:
    """Until ``stopping``, then one last pass (the node's last calls may have just been spooled;
    their workers are gone by then, so no file is in flight)."""
    delay = interval_s
    while True:
        last = stopping.is_set()
        try:
            waiting = len(spool.pending(0.0 if last else IN_FLIGHT_S))
            metrics.records_spooled(waiting)
            if waiting:
                await flush_once(spool, url, jobs_for, 0.0 if last else IN_FLIGHT_S)
                delay = interval_s
                metrics.records_spooled(len(spool.pending(IN_FLIGHT_S)))
        except Exception as exc:  # the database is still away (or the disk): keep the spool, look later
            delay = min(max_backoff_s, delay * 2)
            log.warning(
                "records.flush_failed",
                retry_in_s=delay,
                error=f"{type(exc).__name__}: {str(exc)[:200]}",
            )
        if last:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
