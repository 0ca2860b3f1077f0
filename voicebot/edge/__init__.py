"""voicebot.edge"""
