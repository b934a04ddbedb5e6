"""Prometheus remote-write 1.0 receiver: POST /api/v1/write."""
