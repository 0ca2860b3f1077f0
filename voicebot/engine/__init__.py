"""The pure core of one call (sans-I/O): events in, effects out, timers owned.

``engine.CallEngine`` owns the dialplan interpreter, hearing (VAD, endpointing, speculation, decode
parts), the turn clock, barge-in and every timer; ``builtin`` is the built-in call logic as a dialplan.
Runs inside the per-call worker process (voicebot/callworker), which does the I/O.
"""
