"""Post-call work on the database's durable queue, on any node.

plan.py says which jobs a finished call gets (queued with its record, at most once); worker.py
claims and runs them with retries and dead letters; webhook.py, summary.py and maintenance.py do
the work; cli.py is `voicebot jobs`.
"""
