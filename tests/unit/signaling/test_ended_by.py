"""How a call ended, as the label of voicebot_calls_total."""

from __future__ import annotations

import pytest

from voicebot.signaling.ua_worker import ended_by


@pytest.mark.parametrize(
    ("end_reason", "label"),
    [
        ("", "caller"),
        (None, "caller"),
        ("transferred to sales", "transfer"),
        ("bot hung up: completed", "bot"),
        ("no RTP from caller", "rtp_timeout"),
        ("drain deadline", "shutdown"),
        ("shutdown", "shutdown"),
        ("call worker died", "failure"),
        ("no call worker", "failure"),
    ],
)
def test_labels(end_reason: str | None, label: str) -> None:
    assert ended_by(end_reason) == label
