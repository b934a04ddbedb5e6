"""Database engines: SQLite tuned for one writer and many readers, or PostgreSQL.

SQLite runs in WAL mode with ``synchronous=FULL`` so that an acknowledged batch survives a
power cut, a busy timeout instead of "database is locked" errors, and foreign keys on.

The standard library's sqlite3 module opens transactions implicitly and does not support
SAVEPOINT reliably; here the driver's own transaction handling is switched off and SQLAlchemy's
``begin`` emits ``BEGIN`` itself (``BEGIN IMMEDIATE`` for the writer, so it takes the write lock
up front instead of failing to upgrade a read lock), which makes savepoints work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

IMMEDIATE = "dcmon_immediate"
"""Execution option: begin this connection's transactions with ``BEGIN IMMEDIATE`` (SQLite)."""


def make_engine(url: str) -> Engine:
    """Returns: an engine for ``url``; creates the SQLite file's directory if needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # no implicit BEGIN from the driver
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
