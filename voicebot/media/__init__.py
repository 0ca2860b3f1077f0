"""Audio between pjmedia and Python: 20 ms PCM frames, the per-call bridge port, prompts."""
