"""Storage tiers tests."""
