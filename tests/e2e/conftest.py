"""Fixtures shared with the server tests: an app on SQLite with a hand-moved clock."""

from tests.server.conftest import client, clock, make_app

__all__ = ["client", "clock", "make_app"]
