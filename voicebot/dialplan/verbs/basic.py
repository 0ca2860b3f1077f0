"""The core verbs under one import path (``voicebot.engine`` imports them from here)."""

from voicebot.dialplan.verbs.branch import Branch
from voicebot.dialplan.verbs.collect import Collect
from voicebot.dialplan.verbs.goto import Goto
from voicebot.dialplan.verbs.hangup import Hangup
from voicebot.dialplan.verbs.menu import Menu
from voicebot.dialplan.verbs.say import Say
from voicebot.dialplan.verbs.set_vars import Set
from voicebot.dialplan.verbs.transfer import Transfer

__all__ = ["Branch", "Collect", "Goto", "Hangup", "Menu", "Say", "Set", "Transfer"]
