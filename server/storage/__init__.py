"""Storage: SQLAlchemy 2.0 over SQLite (WAL, embedded default) or PostgreSQL, Alembic-migrated."""
