"""voicebot: a telephony-first SIP/RTP voice bot platform."""

__version__ = "0.1.0"
