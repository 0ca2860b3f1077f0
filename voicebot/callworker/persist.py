"""Keep a finished call: its record and post-call jobs to the database, or to the node's spool.

Runs after the call is over (never on the live path), bounded in time. A database that is down or
slow costs a warning: the record goes to the spool on local disk and the supervisor writes it, in
order, when the database is back (voicebot/records). Transcripts of sensitive input are already
redacted in the events; ``redact_pii`` also drops the caller's number and every transcript.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from voicebot.ipc import proto
from voicebot.jobs.plan import post_call_jobs
from voicebot.jobs.settings import JobSettings
from voicebot.logs import get_logger
from voicebot.records import record as records
from voicebot.records import store
from voicebot.records.record import CallRecord
from voicebot.records.spool import Spool

log = get_logger(__name__)


# Below the pool's 10 s between releasing a finished call's worker and killing it: the record is on
# disk before the database is asked, so even a worker killed mid-write loses nothing.
DATABASE_TIMEOUT_S = 5.0


async def keep(
    url: str, rec: CallRecord, jobs: JobSettings, spool_dir: Path | None, database_failed: str = ""
) -> str:
    """Spool ``rec`` first, then write it to the database and drop the spooled copy (straight to the
    spool when ``database_failed`` says why the database just refused another); returns "saved",
    "duplicate", "spooled" or "lost" (logged as call.not_persisted)."""
    spool = Spool(spool_dir) if spool_dir is not None else None
    path = None
    error = ""
    if spool is not None:
        try:
            path = spool.put(rec)
        except OSError as exc:
            error = f"spool: {exc}; "
    if not database_failed:
        try:
            fresh = await store.save(url, rec, post_call_jobs(jobs, rec), DATABASE_TIMEOUT_S)
        except Exception as exc:  # the database is not the call's business: the spool keeps it
            database_failed = f"{type(exc).__name__}: {str(exc)[:200]}"
        else:
            if spool is not None and path is not None:
                spool.done(path)
            return "saved" if fresh else "duplicate"
    if path is not None:
        log.warning("call.spooled", call_id=rec.call_id, file=path.name, why=database_failed)
        return "spooled"
    log.warning("call.not_persisted", call_id=rec.call_id, error=error + database_failed)
    return "lost"


async def save_call(
    url: str,
    start: proto.CallStart,
    started_at: dt.datetime,
    events: list[dict[str, Any]],
    redact_pii: bool = False,
    events_at: dt.datetime | None = None,
    jobs: JobSettings | None = None,
    spool_dir: Path | None = None,
) -> str:
    rec = records.build(start, started_at, events, redact_pii, events_at)
    return await keep(url, rec, jobs or JobSettings(), spool_dir)


async def record_lost_calls(
    url: str,
    sip_call_ids: list[str],
    ua_worker: int,
    reason: str,
    jobs: JobSettings | None = None,
    spool_dir: Path | None = None,
    node: str = "",
) -> None:
    """Calls of a UA worker that died: their workers died with it and kept nothing, so the supervisor
    (or the shared edge, for a node that died whole) records each (by its SIP Call-ID) as failed,
    with the cause."""
    now = dt.datetime.now(dt.UTC)
    failed = ""  # after one refusal the rest go to the spool: a dead database costs one timeout, not N
    for sip_call_id in sip_call_ids:
        rec = records.lost(sip_call_id, ua_worker, reason, now, node)
        if await keep(url, rec, jobs or JobSettings(), spool_dir, failed) in ("spooled", "lost"):
            failed = failed or "the database refused this node's previous record a moment ago"
