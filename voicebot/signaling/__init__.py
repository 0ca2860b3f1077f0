"""SIP signaling: the pjsua2 UA worker process (endpoint, accounts, calls, admission)."""
