"""Post-call job planning and webhook signatures (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from voicebot.ipc import proto
from voicebot.jobs import plan, webhook
from voicebot.jobs.settings import JobSettings, WebhookSettings
from voicebot.records import record

T0 = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
START = proto.CallStart(call_id="c9", sip_call_id="s", caller="1", callee="2", trunk="t", dialplan="p")


def test_a_call_gets_one_keyed_job_per_webhook_and_a_summary_only_when_something_was_said() -> None:
    cfg = JobSettings(
        summary=True,
        webhooks=[WebhookSettings(name="crm", url="https://crm.example/hook", max_attempts=4)],
    )
    silent = record.build(START, T0, [{"kind": "dtmf", "t": 1, "digit": "1"}])
    assert [(j.kind, j.key, j.max_attempts) for j in plan.post_call_jobs(cfg, silent)] == [
        ("webhook", "webhook:crm:c9", 4)
    ]
    spoken = record.build(START, T0, [{"kind": "transcript", "t": 1, "text": "hi"}])
    assert [j.key for j in plan.post_call_jobs(cfg, spoken)] == ["summary:c9", "webhook:crm:c9"]
    assert plan.post_call_jobs(JobSettings(), spoken) == []


def test_one_maintenance_key_per_interval() -> None:
    assert (
        plan.maintenance_key(7200.0, 3600)
        == plan.maintenance_key(10799.0, 3600)
        != plan.maintenance_key(10800.0, 3600)
    )


def test_a_signature_checks_key_body_and_age() -> None:
    body = b'{"event":"call.ended"}'
    header = webhook.sign(b"key", body, 1_000_000)
    assert webhook.verify(b"key", header, body, now=1_000_010)
    assert not webhook.verify(b"other", header, body, now=1_000_010)
    assert not webhook.verify(b"key", header, body + b" ", now=1_000_010)
    assert not webhook.verify(b"key", header, body, now=1_000_000 + 301)  # a replay of an old delivery
    assert not webhook.verify(b"key", "garbage", body, now=1_000_000)
    assert not webhook.verify(b"key", "t=1000000,v1=\u00e9", body, now=1_000_000)  # not a crash


def test_a_missing_secret_is_a_dead_letter_not_an_unsigned_post(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    hook = WebhookSettings(name="crm", url="https://crm.example/hook", secret_env="NO_SUCH_SECRET")
    with pytest.raises(webhook.DeliveryFailed, match="NO_SUCH_SECRET is not set") as err:
        webhook.secret_of(hook)
    assert err.value.permanent


def test_settings_refuse_a_summary_without_an_llm() -> None:
    from pydantic import ValidationError

    from voicebot.config import Settings

    with pytest.raises(ValidationError, match=r"jobs\.summary needs an LLM"):
        Settings(jobs=JobSettings(summary=True))
