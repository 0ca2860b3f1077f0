"""The per-call worker process (one per answered call): the effects runner around the call's engine.

``main`` (process entry, CallStart/resume), ``runner`` (IPC reader, owned effect tasks), ``speaker``
(TTS, ordered, cancelled on barge-in), ``outbox`` (ordered IPC out), ``tools`` (HTTP integrations),
``plans`` (which dialplan a call runs), ``persist`` (the call record, after the call).
"""
