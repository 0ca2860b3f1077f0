"""The speech inference service: recognition and synthesis loaded once per node, served over HTTP.

Data flow: a call worker's turn audio -> ``client`` (provider chain, replicas, shared breakers) ->
``server`` (`voicebot infer`: OpenAI-compatible audio API, admission) -> ``batcher`` (bounded queue,
deadlines, batched decodes on the model) -> the recogniser (voicebot/asr). ``wire`` checks what comes
in (pure); ``breaker`` is the circuit state every call worker of a node shares.
"""
