"""Sentences that claim something was done, and those that do not."""

from __future__ import annotations

import pytest

from voicebot.llm.honesty import claims_done


@pytest.mark.parametrize(
    "sentence",
    [
        "I've moved your appointment to Tuesday at three.",
        "I have just booked that for you.",
        "Your appointment has been rescheduled.",
        "Your booking is now confirmed.",
        "It's been cancelled.",
        "We have sent the refund.",
        "You're all set!",
        "Done, that's done.",
        "I have successfully updated your address.",
    ],
)
def test_claims_of_a_done_action(sentence: str) -> None:
    assert claims_done(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "Shall I move your appointment to Tuesday?",
        "I will move it once you confirm.",
        "I have not changed anything.",
        "I couldn't book that right now.",
        "We close at six on Sundays.",
        "Has your appointment been moved?",
        "What is your booking reference?",
        "I can help you move an appointment.",
    ],
)
def test_not_claims(sentence: str) -> None:
    assert not claims_done(sentence)
