"""Job accounting: per-job GPU time, energy, utilization and idle allocation; /api/v1/jobs."""
