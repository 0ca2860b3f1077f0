"""How far back `--since` and the console's since= look: one parser, bounded, clear errors."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from voicebot.reports.cli import since
from voicebot.reports.query import span


def test_durations_in_each_unit() -> None:
    assert [span(t) for t in ("90s", "15m", "24h", " 7d ", "2w")] == [
        dt.timedelta(seconds=90),
        dt.timedelta(minutes=15),
        dt.timedelta(hours=24),
        dt.timedelta(days=7),
        dt.timedelta(weeks=2),
    ]


@pytest.mark.parametrize("text", ["", "24", "h", "1.5h", "-1h", "24 hours", "1y", "99999999999999999999w"])
def test_anything_else_is_refused_with_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="a duration such as 15m, 24h or 7d"):
        span(text)


def test_a_span_past_ten_years_is_refused_not_an_overflow() -> None:
    assert span("520w") == dt.timedelta(weeks=520)
    with pytest.raises(ValueError, match="at most ten years"):
        span("9999999w")  # now minus this would not be a date
    with pytest.raises(argparse.ArgumentTypeError, match="at most ten years"):
        since("9999999w")  # the CLI's --since says the same through argparse
