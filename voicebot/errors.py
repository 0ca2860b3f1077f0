"""One exception hierarchy for voicebot.

Every error says what was wrong and, where it helps, what to do. ``retryable`` tells the one retry
loop that owns a dependency whether trying again can help.
"""

from __future__ import annotations


class VoicebotError(Exception):
    """Base of all voicebot errors."""

    retryable: bool = False


class ConfigError(VoicebotError):
    """The configuration is invalid; the message names the setting and the fix."""


class ProtocolError(VoicebotError, ValueError):
    """A peer sent bytes that do not parse (IPC frame, RTP, SIP); the adapter logs and drops them."""


class WorkerError(VoicebotError):
    """A worker process failed to start, answer or stop in time."""

    retryable = True


class EdgeError(VoicebotError):
    """The SIP edge (Kamailio) could not be configured or started."""
