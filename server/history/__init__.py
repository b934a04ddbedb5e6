"""History queries: GET /api/v1/history."""
