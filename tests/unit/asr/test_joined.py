"""A turn decoded in parts (segments of a long turn) is answered with all their words, in order."""

from __future__ import annotations

from voicebot.asr.base import Transcript, joined


def test_parts_join_in_order_with_confidence_weighted_by_audio() -> None:
    out = joined(
        [
            Transcript("I want to complain", 0.9, 20.0, 0.5),
            Transcript("", 0.0, 5.0, 0.1),  # a silent stretch: no words, no weight
            Transcript("about my bill", 0.6, 10.0, 0.3),
        ]
    )
    assert out == Transcript("I want to complain about my bill", 0.8, 35.0, 0.9)


def test_a_failed_part_is_left_out_and_all_failed_is_none() -> None:
    assert joined([None, Transcript("bill", 0.5, 2.0, 0.1)]) == Transcript("bill", 0.5, 2.0, 0.1)
    assert joined([None, None]) is None
    assert joined([Transcript("", 0.0, 1.0, 0.1)]) == Transcript("", 0.0, 1.0, 0.1)
