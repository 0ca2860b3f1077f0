"""Per-trunk outbound limits: concurrent calls and calls per second (pure)."""

from __future__ import annotations

from voicebot.outbound.limits import TrunkLimit


def test_calls_per_second_are_spaced_and_the_wait_says_how_long() -> None:
    limit = TrunkLimit(max_calls=10, cps=2.0)
    assert limit.wait_s(0, 100.0) == 0.0
    assert limit.wait_s(1, 100.0) == 0.5  # the next token comes in half a second
    assert abs(limit.wait_s(1, 100.2) - 0.3) < 1e-9
    assert limit.wait_s(1, 100.5) == 0.0
    assert limit.wait_s(2, 101.5) == 0.0  # tokens do not pile up beyond one call


def test_no_call_starts_while_the_trunk_is_full() -> None:
    limit = TrunkLimit(max_calls=1, cps=100.0)
    assert limit.wait_s(0, 1.0) == 0.0
    assert limit.wait_s(1, 5.0) == 1.0
    assert limit.wait_s(0, 5.0) == 0.0
