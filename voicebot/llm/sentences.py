"""Streamed LLM text -> whole sentences for the TTS (sans-I/O).

The TTS speaks a sentence as soon as it is complete, so the caller hears the start of a reply while
the model is still writing the rest. A sentence ends at . ! ? (or a line break) followed by a space;
"Dr.", "e.g.", "4.50" and "a.m." do not end one. Very short pieces ("Sure.") are joined to the next
sentence so the TTS does not start and stop for one word, unless they are all there is.

The first piece of a reply may be a clause: at a comma, semicolon or colon after at least
``first_clause_words`` words, it goes to the TTS without waiting for the sentence's end. The caller
waits for the first words only; the rest is synthesised while they play (measured in bench/llm_turn.py:
with four calls on one local model, a whole first sentence took over a second to be written).
"""

from __future__ import annotations

import re

_END = re.compile(r"([.!?]+[\"')\]]*|\n+)(\s+)")
_ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "st",
        "no",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "a.m",
        "p.m",
        "approx",
        "dept",
        "jr",
        "sr",
    }
)
_MARKUP = re.compile(r"[*_`#]+")  # markdown emphasis/headings: never read out
_CLAUSE = re.compile(r"[,;:](\s+)")


class SentenceSplitter:
    def __init__(self, min_chars: int = 12, first_clause_words: int = 4) -> None:
        self.min_chars = min_chars
        self.first_clause_words = first_clause_words  # 0: whole sentences only
        self._buf = ""
        self._held = ""  # a short sentence waiting to be joined to the next one
        self._started = False  # something was emitted

    def feed(self, delta: str) -> list[str]:
        """Add streamed text; return the sentences it completed."""
        self._buf += delta
        out: list[str] = []
        start = 0
        for m in _END.finditer(self._buf):
            if m.group(1).startswith(".") and _is_abbreviation(self._buf[start : m.start()]):
                continue
            out += self._emit(self._buf[start : m.end(1)])
            start = m.end()
        self._buf = self._buf[start:]
        if not self._started and self.first_clause_words:
            for m in _CLAUSE.finditer(self._buf):
                head = self._buf[: m.start() + 1]
                if len(f"{self._held} {head}".split()) >= self.first_clause_words:
                    out += self._emit(head)
                    self._buf = self._buf[m.end() :]
                    break
        return out

    def flush(self) -> list[str]:
        """The stream ended: whatever is left is the last sentence."""
        rest, self._buf = self._buf, ""
        out = self._emit(rest, final=True)
        if self._held:
            out.append(self._held)
            self._held = ""
        return out

    def _emit(self, piece: str, final: bool = False) -> list[str]:
        text = " ".join(_MARKUP.sub("", piece).split())
        if not text:
            return []
        if self._held:
            text, self._held = f"{self._held} {text}", ""
        if len(text) < self.min_chars and not final:
            self._held = text
            return []
        self._started = True
        return [text]


def _is_abbreviation(before: str) -> bool:
    """Is the word right before a '.' an abbreviation or a number's integer part (4.50)?"""
    word = before.rsplit(None, 1)[-1].lower() if before.strip() else ""
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha() and word != "i")
