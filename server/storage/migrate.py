"""Schema migrations with Alembic, run from code (no alembic.ini needed).

``upgrade(engine)`` brings the database to the newest revision; ``current(engine)`` tells where
it is. Operators can also run ``dcmon server --migrate-only``. Server replicas starting together
on one PostgreSQL migrate one at a time (an advisory lock): the others then find nothing to do,
instead of failing on tables that appeared meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

MIGRATION_LOCK_KEY = int.from_bytes(b"dcmon-mg", "big")


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("server.storage").joinpath("migrations"))
    )
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Apply every pending migration.

    Returns:
        The revision before and after.
    """
    with _one_at_a_time(engine):
        before = current_revision(engine)
        command.upgrade(_config(engine), "head")
        return before, current_revision(engine)


@contextmanager
def _one_at_a_time(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, hold a session-level advisory lock (waiting for it) on a connection of
    its own; released when the block ends or the process dies."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
