"""Storage tests run on both backends: the ``database_url`` fixture is parametrized."""

from tests.server.conftest import clock, database_url, postgres_server, postgres_url

__all__ = ["clock", "database_url", "postgres_server", "postgres_url"]
