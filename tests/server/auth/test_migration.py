"""Migration 0004 (credentials) on both backends: up from 0003, schema equal to the tables
module, and back down."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from server.storage.db import make_engine
from server.storage.migrate import current_revision, upgrade
from server.storage.tables import Base


def test_0004_up_and_down(database_url: str) -> None:
    engine = make_engine(database_url)
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("server.storage").joinpath("migrations"))
    )
    config.attributes["engine"] = engine
    try:
        command.upgrade(config, "0003")
        assert "credentials" not in inspect(engine).get_table_names()
        assert upgrade(engine)[0] == "0003"
        inspector = inspect(engine)
        assert "credentials" in inspector.get_table_names()
        unique = inspector.get_unique_constraints("credentials")
        assert [constraint["column_names"] for constraint in unique] == [["sha256"]]
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        command.downgrade(config, "0003")
        assert "credentials" not in inspect(engine).get_table_names()
        assert current_revision(engine) == "0003"
    finally:
        engine.dispose()
