"""The GPU benchmark on the server: results judged against the rest of the fleet."""
