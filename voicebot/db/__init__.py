"""voicebot.db"""
