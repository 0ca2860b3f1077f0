"""Settings of the post-call job queue (settings `jobs`): a model of its own, because call workers
read it (to queue a call's jobs with its record) and they do not load the node's settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookSettings(_Model):
    # A CRM endpoint told about every finished call (a signed JSON POST; see docs/jobs.md).
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    url: str = Field(pattern=r"^https?://")
    # The environment variable that holds the HMAC-SHA256 signing key ("" = unsigned; never the key itself)
    secret_env: str = ""
    timeout_s: float = Field(10.0, gt=0)
    max_attempts: int = Field(8, ge=1)  # then the job is a dead letter (`voicebot jobs list --status failed`)


class JobSettings(_Model):
    # Post-call work on the database's durable queue (docs/jobs.md).
    worker: bool = True  # `voicebot run` works the queue too; false when `voicebot jobs run` nodes do it
    poll_s: float = Field(1.0, gt=0)  # how often an idle worker looks for jobs
    retry_base_s: float = Field(30.0, gt=0)  # back-off after a failed attempt: 30 s, 60 s, 120 s, ...
    lease_s: float = Field(300.0, gt=0)  # a job whose worker died is run again after this
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    summary: bool = False  # a summary of each call's transcript by the configured LLM (llm.model)
    # Transcripts and caller numbers older than this are replaced by <redacted> (0 = never)
    redact_after_days: int = Field(0, ge=0)
    retention_days: int = Field(0, ge=0)  # calls older than this are deleted with their events (0 = keep)
    maintenance_interval_s: float = Field(3600.0, gt=0)  # how often redaction and the purge run

    @property
    def active(self) -> bool:
        """Whether any job can be queued at all (otherwise no worker needs to poll the database)."""
        return bool(self.webhooks or self.summary or self.redact_after_days or self.retention_days)
