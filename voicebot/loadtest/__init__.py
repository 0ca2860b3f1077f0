"""`voicebot loadtest`: complete conversations over SIP against a SIP bot (ours by default).

script.py   conversation tests (dialplans/*.test.yaml) -> what each scripted caller does (pure)
voice.py    the callers' voice: piper's joe (or espeak-ng), unlike the bot's, at the call's rate
caller.py   one pjsua2 endpoint, a call per scripted caller, a media port that speaks and listens
run.py      concurrency, ramp, duration, progress; per-call results
results.py  percentiles and rates of a run (pure)
slo.py      an SLO file, checked against the results: a miss exits non-zero (pure)
cli.py      the command
"""
