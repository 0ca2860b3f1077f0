"""The UA worker process: one pjsua2 endpoint (at most 4 calls) and the per-call workers it drives.

``worker`` (main loop: SIP, IPC, housekeeping, heartbeats, worker replacement), ``pool`` (pre-started
call workers), ``port`` (the pjmedia bridge port: 20 ms frames; the media thread owns its playout
queue). SIP helpers are in voicebot/signaling.
"""
