"""Rebalancing hints: a pure engine over a cluster snapshot, and its trace-replay simulator."""
