"""Telling a decoder's repetition loop from what the caller said (pure functions).

Whisper, like any autoregressive decoder, can fall into a loop: "I would like to speak to someone in
sales please. I would like to speak to someone in sales please. I would ..." until its token cap.
Three signs, each cheap: more words than anybody says in that much audio, a phrase repeated back to
back, and text that compresses far better than language does (Whisper's own test, zlib ratio > 2.4).
"""

from __future__ import annotations

import re
import zlib

# Fast speech is ~3.5 words/s; a loop at the decoder's token cap gives 8-10.
MAX_WORDS_PER_S = 5.0
MIN_WORDS_TO_JUDGE = 8  # "no no no no" is an answer, not a loop
MAX_COMPRESSION_RATIO = 2.4  # Whisper's threshold for a failed (repetitive) decode
_WORD = re.compile(r"[\w']+")


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped (what repetition is judged on)."""
    return [w.lower() for w in _WORD.findall(text)]


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` per byte of its zlib compression (~1.5-2 for language, more for loops)."""
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


def repeated_run(tokens: list[str], min_len: int = 2, min_repeats: int = 3) -> tuple[int, int] | None:
    """The first phrase of ``min_len``+ words said ``min_repeats``+ times in a row, as (start, length);
    None if there is none. "agent agent" or "no no no" are not loops (too short a phrase)."""
    n = len(tokens)
    for start in range(n):
        for size in range(min_len, (n - start) // min_repeats + 1):
            phrase = tokens[start : start + size]
            if all(
                tokens[start + k * size : start + (k + 1) * size] == phrase for k in range(1, min_repeats)
            ):
                return start, size
    return None


def loop_in(tokens: list[str]) -> tuple[int, int] | None:
    """A decoder loop in ``tokens``: a 2+ word phrase three times in a row, or a 4+ word phrase twice
    (a caller may say "agent, agent" or "no no no", hardly a whole sentence twice over)."""
    return repeated_run(tokens, 2, 3) or repeated_run(tokens, 4, 2)


def looped(text: str, audio_s: float) -> bool:
    """Does this transcript look like a repetition loop rather than speech?"""
    tokens = words(text)
    if len(tokens) < MIN_WORDS_TO_JUDGE:
        return False
    if len(tokens) > max(audio_s, 1.0) * MAX_WORDS_PER_S:
        return True
    if loop_in(tokens) is not None:
        return True
    return compression_ratio(text) > MAX_COMPRESSION_RATIO


def collapse(text: str) -> str:
    """The transcript with a back-to-back repeated phrase said once, and what followed the loop
    dropped (a decoder in a loop never comes back to the audio). Unchanged if there is no loop."""
    raw = text.split()
    tokens = [words(w) for w in raw]
    flat = [w for ws in tokens for w in ws]
    found = loop_in(flat)
    if found is None:
        return text
    start, size = found
    keep_words = start + size
    # map the number of normalised words back onto the original (punctuated) words
    out: list[str] = []
    seen = 0
    for original, ws in zip(raw, tokens, strict=True):
        if seen >= keep_words:
            break
        out.append(original)
        seen += len(ws)
    return " ".join(out)
