"""Nodes and their GPUs: GET /api/v1/nodes, /api/v1/nodes/{node}."""
