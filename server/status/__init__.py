"""Status APIs about the server itself."""
