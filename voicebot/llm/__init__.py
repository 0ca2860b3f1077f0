"""The LLM side of a call: replies streamed sentence by sentence into the TTS."""
