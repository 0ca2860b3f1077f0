"""What the calls in the database say: `voicebot calls` and `voicebot report`."""
