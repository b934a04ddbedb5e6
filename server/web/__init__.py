"""The web dashboard (server-rendered HTML)."""
