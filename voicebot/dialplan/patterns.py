"""Admin-written regular expressions (a collect's ``validate``), matched in linear time.

Python's ``re`` backtracks: the legal pattern ``^(a+)+$`` against forty a's and a "b" runs for hours,
and it would run on the call's only event loop, so the caller is no longer heard. RE2 (google-re2)
matches in time linear in the input, whatever the pattern; what it cannot do in linear time
(backreferences, lookaround) it refuses to compile, and so does the dialplan loader: an admin gets
the error at ``voicebot dialplan check``, never a stalled call.
"""

from __future__ import annotations

import functools
from typing import Any

import re2  # type: ignore[import-untyped]

# Caller answers are short; a longer value (a transcript gone wild) is refused, not matched.
MAX_INPUT_CHARS = 1000
_UNSUPPORTED_HINT = (
    "voicebot matches validate patterns with RE2 (linear time: a pattern can never stall a call), "
    "which has no backreferences (\\1) and no lookahead/lookbehind ((?=, (?!, (?<=, (?<!); "
    "rewrite the pattern without them"
)


class PatternError(ValueError):
    """A pattern that RE2 cannot compile; the message says why and what to do."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print each refused pattern to stderr; we raise instead
    return options


_OPTIONS = _options()


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Any:
    """The compiled pattern (cached: the same few patterns run on every call of a plan)."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        why = exc.args[0] if exc.args else b""
        detail = why.decode("utf-8", "replace") if isinstance(why, bytes) else str(why)
        raise PatternError(f"{detail or 'not a valid regular expression'}; {_UNSUPPORTED_HINT}") from None


def fullmatch(pattern: str, text: str) -> bool:
    """Whether all of ``text`` matches ``pattern`` (False for text longer than MAX_INPUT_CHARS)."""
    if len(text) > MAX_INPUT_CHARS:
        return False
    return compile_pattern(pattern).fullmatch(text) is not None
