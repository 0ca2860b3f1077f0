"""Does an LLM sentence claim that something was done? (pure)

A model asked to move an appointment may say "I've moved it to Tuesday" without calling the tool,
or after the tool failed. The engine drops such a sentence unless a tool of the agent step has
succeeded; the caller hears only what is true, and the call's events keep what was dropped.
The patterns are first-person or passive completions of the actions a phone agent performs; a
question ("Shall I book it?"), a plan ("I will book it") or a negation ("I have not changed
anything") is not a claim.
"""

from __future__ import annotations

import re

_DONE = (
    r"(?:booked|moved|rescheduled|cancell?ed|changed|updated|transferred|sent|scheduled|confirmed|"
    r"refunded|paid|processed|submitted|registered|reset|unlocked|renewed|ordered|arranged|"
    r"placed|issued|credited|activated|deactivated|closed|opened)"
)
_WE = r"(?:i|we)(?:'ve| have| just| already|'ve just|'ve already| have just| have already)"
_IT = r"(?:it|that|this|your\s+\w+(?:\s+\w+)?)(?:'s| is| has been| was| is now| has now been)"
_CLAIM = re.compile(
    r"\b(?:"
    rf"{_WE}\s+(?:\w+\s+){{0,2}}{_DONE}"
    rf"|{_IT}\s+(?:\w+\s+){{0,1}}{_DONE}"
    r"|(?:you're|you are) all set|all done|that's done|it's done"
    r")\b",
    re.IGNORECASE,
)
_NOT = re.compile(r"\b(?:not|n't|never|couldn't|could not|unable|cannot|can't)\b", re.IGNORECASE)


def claims_done(sentence: str) -> bool:
    """True for "I've moved your appointment", "Your booking has been cancelled", "You're all set"."""
    if sentence.rstrip().endswith("?"):
        return False
    match = _CLAIM.search(sentence)
    if match is None:
        return False
    return _NOT.search(sentence[: match.end()]) is None
