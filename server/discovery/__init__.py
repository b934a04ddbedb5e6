"""Discovery APIs: which series, label names and label values exist."""
