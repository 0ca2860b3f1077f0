"""Dialplan verbs: one module each, registered by name (the keys admins write in a step)."""

from voicebot.dialplan.verbs import basic, conversation, tool  # registration side effect
from voicebot.dialplan.verbs.registry import VERBS, Verb, register

__all__ = ["VERBS", "Verb", "basic", "conversation", "register", "tool"]
