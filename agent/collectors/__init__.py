"""Collectors: read the node (host, GPUs) and return samples. One module per concept."""
