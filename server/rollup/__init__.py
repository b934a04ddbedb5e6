"""Pure cores for range queries: rollup buckets, step aggregation and label matchers."""
