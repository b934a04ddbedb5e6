"""GPU health events (XIDs): stored from ingest, served at /api/v1/events."""
