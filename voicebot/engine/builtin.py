"""The built-in call logic, as a dialplan: one kind of call logic whatever drives a call.

Used when the settings ask for it (``call.logic: builtin``: the greeting, transfer digits and speech
keywords of the settings) and as the fallback when a routed dialplan file was never usable. The plan
greets, transfers on a digit or a spoken keyword, says goodbye on the hang-up digit or "goodbye", and
acknowledges any other key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from voicebot.dialplan.plan import Plan, parse

NOT_UNDERSTOOD = "Sorry, I did not catch that. You can say sales or support, or press a key."
LISTEN = "What else can I do for you?"
_SPOKEN = {"*": "star", "#": "hash"}
_GOODBYES = ["goodbye", "bye"]


def builtin_plan(
    greeting: str,
    transfer_digits: Mapping[str, str],
    speech_keywords: Mapping[str, str],
    hangup_digit: str = "#",
    barge_in: bool = True,
) -> Plan:
    """The built-in plan for these settings (validated like any dialplan file)."""
    queues = sorted({*transfer_digits.values(), *speech_keywords.values()})
    words = {q: [w for w, wq in speech_keywords.items() if wq == q] for q in queues}
    options: list[dict[str, Any]] = []
    for q in queues:
        digits = sorted(d for d, dq in transfer_digits.items() if dq == q)
        first = {"goto": f"to_{q}", "value": q, "words": words[q]} if words[q] else {"goto": f"to_{q}"}
        if digits:
            first["keys"] = digits[0]
        options.append(first)
        options += [{"keys": d, "goto": f"to_{q}", "value": q} for d in digits[1:]]
    options.append({"keys": hangup_digit, "words": _GOODBYES, "goto": "goodbye"})
    taken = {o.get("keys") for o in options}
    others = [d for d in "0123456789*#" if d not in taken]
    options += [{"keys": d, "goto": f"pressed_{_name(d)}", "value": d} for d in others]

    def menu(prompt: str) -> dict[str, Any]:
        return {
            "menu": {
                "prompt": prompt,
                "reprompts": [NOT_UNDERSTOOD],
                "options": options,
                "retries": 5,
                "no_match": "goodbye",
                "no_input": "listen",
            }
        }

    steps: dict[str, Any] = {"main": menu(greeting), "listen": menu(LISTEN)}
    for q in queues:
        steps[f"to_{q}"] = {
            "transfer": {"queue": q, "announce": f"Transferring you to {q}.", "on_failure": f"{q}_failed"}
        }
        steps[f"{q}_failed"] = {
            "say": f"Sorry, nobody in {q} can take your call right now.",
            "next": "listen",
        }
    for d in others:
        steps[f"pressed_{_name(d)}"] = {"say": f"You pressed {_SPOKEN.get(d, d)}.", "next": "listen"}
    steps["goodbye"] = {"hangup": {"say": "Goodbye.", "disposition": "completed"}}
    doc = {
        "id": "builtin",
        "version": 1,
        "description": "The built-in call logic (settings call.greeting, transfer_digits, speech_keywords)",
        "settings": {"barge_in": barge_in, "no_input_timeout_s": 60},
        "queues": queues,
        "start": "main",
        "steps": steps,
    }
    return parse(yaml.safe_dump(doc, sort_keys=False).encode(), "<builtin>")


def _name(digit: str) -> str:
    return {"*": "star", "#": "hash"}.get(digit, digit)
