"""SIP signalling helpers of the UA worker process: endpoint, accounts, call legs, admission policy
(sans-I/O), SIP message parsing."""
