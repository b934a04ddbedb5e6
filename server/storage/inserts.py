"""Portable inserts: INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert


def insert_ignore(conn: Connection, table: Table) -> Insert:
    """Returns: INSERT ... ON CONFLICT DO NOTHING for this connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def insert_new(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT unless the primary key exists; returns whether a row was inserted.

    Asks RETURNING rather than trusting rowcount, which psycopg reports as -1 here.
    """
    key = next(iter(table.primary_key.columns))
    return conn.execute(insert_ignore(conn, table).returning(key), values).first() is not None
