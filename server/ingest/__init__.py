"""Ingest: POST /api/v1/ingest."""
