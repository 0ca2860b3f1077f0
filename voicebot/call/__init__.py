"""Per-call workers: one process per answered call, pre-started in a pool owned by a UA worker."""
