"""Streamed LLM text -> sentences for the TTS: boundaries, abbreviations, numbers, tiny pieces."""

from __future__ import annotations

import pytest

from voicebot.llm.sentences import SentenceSplitter


def split(deltas: list[str]) -> list[str]:
    s = SentenceSplitter()
    out = [sentence for d in deltas for sentence in s.feed(d)]
    return out + s.flush()


def test_sentences_come_out_as_soon_as_they_end() -> None:
    s = SentenceSplitter()
    assert s.feed("Your order shipped on Monday") == []
    assert s.feed(". It should arrive ") == ["Your order shipped on Monday."]
    assert s.feed("by Friday! Anything else?") == ["It should arrive by Friday!"]
    assert s.flush() == ["Anything else?"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Dr. Smith sees you at 9 a.m. tomorrow. Bring your card.",
            ["Dr. Smith sees you at 9 a.m. tomorrow.", "Bring your card."],
        ),
        (
            "The total is 42.50 dollars. Thanks for waiting.",
            ["The total is 42.50 dollars.", "Thanks for waiting."],
        ),
        ("Sure. I can help with that today.", ["Sure. I can help with that today."]),  # tiny piece joined
        ("OK.", ["OK."]),  # unless it is all there is
        (
            "**Great**, your _booking_ is made.\n\n# Next\nWe will call you.",
            ["Great, your booking is made.", "Next We will call you."],
        ),
        (
            'He said "wait here." Then he left the building.',
            ['He said "wait here."', "Then he left the building."],
        ),
        ("", []),
    ],
)
def test_boundaries(text: str, expected: list[str]) -> None:
    assert split([text]) == expected
    assert split(list(text)) == expected  # token by token: the same sentences


def test_the_first_piece_of_a_reply_may_be_a_clause_the_rest_are_sentences() -> None:
    s = SentenceSplitter()
    out = s.feed("I'm sorry for the wait, but as your assistant, ")
    assert out == ["I'm sorry for the wait,"]  # four words and a comma: the caller hears them now
    out += s.feed("I can help. We close at six, on Sundays at four. ")
    assert out[1:] == ["but as your assistant, I can help.", "We close at six, on Sundays at four."]
    short = SentenceSplitter()
    assert short.feed("Yes, we do, ") == [] and short.flush() == ["Yes, we do,"]  # under four words
    assert SentenceSplitter().feed("It costs 1,000 dollars and more. ") == [
        "It costs 1,000 dollars and more."
    ]
    assert SentenceSplitter(first_clause_words=0).feed("I'm sorry for the wait, but ") == []
