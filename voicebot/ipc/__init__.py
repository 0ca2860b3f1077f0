"""IPC between a UA worker and its per-call workers: explicit messages over SOCK_SEQPACKET sockets."""
