"""Audio helpers: 20 ms PCM frame copies, WAV prompts, spoken prompts (TTS + disk cache)."""
