"""Prometheus exposition: /metrics with node_exporter and dcgm-exporter names."""
