"""A finished call's record on its way to the database.

record.py builds it (pure), store.py writes it and its post-call jobs in one idempotent transaction,
spool.py keeps it on local disk while the database cannot take it, and flusher.py writes the spool
in order when the database is back.
"""
