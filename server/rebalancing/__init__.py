"""Live rebalancing hints: the server's side of the pure engine in ``server.hints``."""
