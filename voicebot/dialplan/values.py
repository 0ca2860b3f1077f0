"""Values in and out of the interpreter: caller answers as typed values, ``{var}`` templates, JSON paths.

Templates are sandboxed by design: ``{name}`` is replaced by a variable's value and nothing else is
evaluated (no expressions, attribute access or calls), so a dialplan cannot reach Python internals.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from voicebot.dialplan import understand
from voicebot.dialplan.verbs.collect import Collect
from voicebot.dialplan.verbs.registry import PLACEHOLDER

KEYED_LENGTH = {"date": 8, "time": 4}  # keys for a date: YYYYMMDD; for a time: HHMM


def understood(verb: Collect, text: str, today: str) -> Any:
    """The spoken answer as the collect's kind of value, or None (no match)."""
    if verb.kind == "yes_no":
        return understand.yes_no(text)
    if verb.kind == "choice":
        i = understand.match_option(text, [c.words() for c in verb.choices])
        return None if i is None else verb.choices[i].value
    if verb.kind == "digits":
        found = understand.digits(text)
        return found if found and verb.min_digits <= len(found) <= verb.max_digits else None
    if verb.kind == "number":
        return understand.number(text)
    if verb.kind == "date":
        day = understand.date(text, dt.date.fromisoformat(today) if today else None)
        return day.isoformat() if day else None
    if verb.kind == "time":
        clock = understand.time_of_day(text)
        return clock.strftime("%H:%M") if clock else None
    return text.strip() or None


def keyed_date_time(kind: str, keys: str) -> str | None:
    """``20261203`` -> ``2026-12-03``; ``0915`` -> ``09:15``; None when not a real date/time."""
    try:
        if kind == "date" and len(keys) == 8:
            return dt.date(int(keys[:4]), int(keys[4:6]), int(keys[6:])).isoformat()
        if kind == "time" and len(keys) == 4:
            return dt.time(int(keys[:2]), int(keys[2:])).strftime("%H:%M")
    except ValueError:
        return None
    return None


def in_range(verb: Collect, value: float) -> bool:
    """Within the collect's ``min_value`` / ``max_value``?"""
    return (verb.min_value is None or value >= verb.min_value) and (
        verb.max_value is None or value <= verb.max_value
    )


def dig(data: Any, dotted: str) -> Any:
    """`customer.name` / `items.0.id` from a JSON reply; None where the path does not exist."""
    for part in dotted.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def render(text: str, variables: dict[str, Any]) -> str:
    """`{name}` placeholders from variables; no expressions, no attribute access (sandboxed by design)."""
    return PLACEHOLDER.sub(lambda m: _spoken(variables.get(m.group(1))), text)


def render_value(value: Any, variables: dict[str, Any]) -> Any:
    """Tool bodies: a string that is exactly ``{name}`` keeps the variable's type (numbers stay numbers)."""
    if not isinstance(value, str):
        return value
    whole = PLACEHOLDER.fullmatch(value)
    return variables.get(whole.group(1)) if whole else render(value, variables)


def _spoken(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
