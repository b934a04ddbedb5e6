"""Schema migrations with Alembic, run from code (no alembic.ini needed).

``upgrade(engine)`` brings the database to the newest revision; ``current(engine)`` tells where
it is. Operators can also run ``dcmon server --migrate-only``.
"""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine


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
    before = current_revision(engine)
    command.upgrade(_config(engine), "head")
    return before, current_revision(engine)


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
