"""Which post-call jobs a finished call gets (pure). Each has a key, so queuing twice is queuing once."""

from __future__ import annotations

from voicebot.db.repository import JobSpec
from voicebot.jobs.settings import JobSettings
from voicebot.records.record import CallRecord

WEBHOOK = "webhook"
SUMMARY = "summary"
MAINTENANCE = "maintenance"


def post_call_jobs(cfg: JobSettings, record: CallRecord) -> list[JobSpec]:
    jobs = []
    if cfg.summary and any(e.kind == "transcript" for e in record.events):
        jobs.append(JobSpec(SUMMARY, f"{SUMMARY}:{record.call_id}", {"call_id": record.call_id}, 3))
    for hook in cfg.webhooks:
        jobs.append(
            JobSpec(
                WEBHOOK,
                f"{WEBHOOK}:{hook.name}:{record.call_id}",
                {"call_id": record.call_id, "webhook": hook.name},
                hook.max_attempts,
            )
        )
    return jobs


def maintenance_key(now_s: float, interval_s: float) -> str:
    """One maintenance job per interval, whichever node's worker queues it first."""
    return f"{MAINTENANCE}:{int(now_s // interval_s)}"
