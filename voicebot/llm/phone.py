"""An LLM's sentences made fit to be heard (pure): markup is not read aloud (no asterisks, hashes,
bullets, link syntax or code ticks), a URL is not spelled out, and a reply stops at a length budget
(a caller cannot skim: a long answer is a lost caller)."""

from __future__ import annotations

import re

_LINK = re.compile(r"\[([^\]]{1,200})\]\((?:[^)\s]{1,500})\)")
_URL = re.compile(r"\bhttps?://\S+", re.IGNORECASE)
_MARKS = re.compile(r"(\*\*|__|\*|`+|~~)")
_LINE_START = re.compile(r"^\s*(?:#{1,6}\s+|[-*+•]\s+|\d{1,2}[.)]\s+|>\s*)", re.MULTILINE)
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
_SPACES = re.compile(r"\s+")


def for_phone(sentence: str) -> str:
    """The sentence without markup, as it should be spoken ("" when nothing speakable is left)."""
    text = _LINK.sub(r"\1", sentence)
    text = _URL.sub("the link on our website", text)
    text = _LINE_START.sub("", text)
    text = _MARKS.sub("", text)
    text = _EMOJI.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return text if any(ch.isalnum() for ch in text) else ""


class Budget:
    """Counts what a reply has said; ``take(sentence)`` is False once it is over ``max_chars``
    (the sentence that crosses the budget is still said whole: never half a sentence)."""

    def __init__(self, max_chars: int) -> None:
        self.left = max_chars

    def take(self, sentence: str) -> bool:
        if self.left <= 0:
            return False
        self.left -= len(sentence)
        return True
