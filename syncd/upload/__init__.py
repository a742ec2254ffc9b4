"""Queue to store: one upload, its retries, the schedule and pacing, object keys."""
