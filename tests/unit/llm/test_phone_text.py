"""An LLM's sentences without markup, and a reply's length budget."""

from __future__ import annotations

import pytest

from voicebot.llm.phone import Budget, for_phone


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("**Great!** We open at *nine*.", "Great! We open at nine."),
        ("- Monday to Saturday: nine to six", "Monday to Saturday: nine to six"),
        ("1. Bring your receipt.", "Bring your receipt."),
        ("## Opening hours", "Opening hours"),
        ("See [our page](https://example.com/hours).", "See our page."),
        ("Details at https://example.com/x?y=1 today.", "Details at the link on our website today."),
        ("Use `code` 42 🙂", "Use code 42"),
        ("***", ""),
    ],
)
def test_markup_is_not_read_aloud(written: str, spoken: str) -> None:
    assert for_phone(written) == spoken


def test_the_budget_lets_the_sentence_that_crosses_it_finish_then_stops() -> None:
    budget = Budget(50)
    said = [s for s in ["A" * 30, "B" * 30, "C" * 10] if budget.take(s)]
    assert said == ["A" * 30, "B" * 30]
