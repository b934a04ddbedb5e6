"""Latest values per node (in memory), fed by ingest."""
