"""Dialplan verbs: one module each, registered by name (the keys admins write in a step)."""

from voicebot.dialplan.verbs import (  # registration side effect, in the order docs list them
    agent,
    branch,
    callback,
    collect,
    goto,
    hangup,
    menu,
    record,
    say,
    set_vars,
    subflow,
    tool,
    transfer,
)
from voicebot.dialplan.verbs.registry import VERBS, Verb, register

__all__ = [
    "VERBS",
    "Verb",
    "agent",
    "branch",
    "callback",
    "collect",
    "goto",
    "hangup",
    "menu",
    "record",
    "register",
    "say",
    "set_vars",
    "subflow",
    "tool",
    "transfer",
]
