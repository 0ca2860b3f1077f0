"""Calls the bot places: callbacks a caller accepted and `voicebot call NUMBER`.

settings.py (what admins set), policy.py (which numbers may be dialled: pure), schedule.py (when a
callback rings: pure), limits.py (per-trunk concurrency and calls per second: pure), spool.py (the
hand-off between the node's job worker and its UA workers, files in run_dir/outbound), dialer.py
(the job that places one call and waits for its outcome), cli.py (`voicebot call`).

Data flow: a `callback` step or `voicebot call` -> an `outbound` job on the durable queue (run_after =
the chosen time) -> the node's job worker (dialer) checks the destination policy, calling hours and
the trunk's limits -> a dial request in run_dir/outbound/queue -> one UA worker claims it, places the
INVITE through the trunk and, when answered, runs the plan's entry step in a call worker.
"""
