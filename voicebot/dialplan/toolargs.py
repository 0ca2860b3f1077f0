"""An LLM's tool arguments, checked against the admin's parameter declarations before anything is
called (sans-I/O). The model writes JSON text; what it wrote is untrusted like caller input: unknown
or missing arguments, wrong types, values outside an enum, a pattern or a range are refused with a
reason the model can act on, and nothing is sent."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any

from voicebot.dialplan import patterns
from voicebot.dialplan.verbs.agent import MAX_STRING, AgentTool, Param

MAX_ARGUMENTS_TEXT = 4000
_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def validate(tool: AgentTool, arguments: str) -> tuple[dict[str, Any], str]:
    """(the arguments, "") when they fit the declaration, else ({}, why not)."""
    if len(arguments) > MAX_ARGUMENTS_TEXT:
        return {}, "arguments too long"
    try:
        raw = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        return {}, "arguments are not valid JSON"
    if not isinstance(raw, dict):
        return {}, "arguments must be a JSON object"
    unknown = sorted(set(raw) - set(tool.parameters))
    if unknown:
        return {}, f"unknown argument {unknown[0]!r}"
    out: dict[str, Any] = {}
    for name, param in tool.parameters.items():
        if name not in raw or raw[name] is None:
            if param.optional:
                out[name] = ""
                continue
            return {}, f"missing argument {name!r}"
        value, problem = _value(param, raw[name])
        if problem:
            return {}, f"{name}: {problem}"
        out[name] = value
    return out, ""


def _value(p: Param, v: Any) -> tuple[Any, str]:
    if p.type == "boolean":
        return (v, "") if isinstance(v, bool) else (None, "must be true or false")
    if p.type in ("integer", "number"):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return None, f"must be a{'n integer' if p.type == 'integer' else ' number'}"
        if p.type == "integer" and v != int(v):
            return None, "must be a whole number"
        if (p.minimum is not None and v < p.minimum) or (p.maximum is not None and v > p.maximum):
            return None, f"must be between {p.minimum} and {p.maximum}"
        return (int(v) if p.type == "integer" else v), ""
    if not isinstance(v, str):
        return None, "must be a string"
    if len(v) > MAX_STRING:
        return None, "too long"
    if p.type == "date":
        try:
            return dt.date.fromisoformat(v).isoformat(), ""
        except ValueError:
            return None, "must be a date as YYYY-MM-DD"
    if p.type == "time":
        return (v, "") if _TIME.fullmatch(v) else (None, "must be a time as HH:MM")
    if p.enum is not None and v not in p.enum:
        return None, f"must be one of {', '.join(p.enum)}"
    if p.pattern is not None and not patterns.fullmatch(p.pattern, v):
        return None, "does not have the expected form"
    return v, ""


def redacted(tool: AgentTool, args: dict[str, Any]) -> dict[str, Any]:
    """The arguments for the call's record: ``sensitive`` parameters as <redacted>."""
    return {k: "<redacted>" if tool.parameters[k].sensitive else v for k, v in args.items()}
