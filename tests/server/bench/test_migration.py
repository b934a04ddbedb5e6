"""Migration 0009 (benchmark tables) on both backends: up from 0008, the schema equal to the
table definitions, one open request per node enforced by the database, and back down."""

from __future__ import annotations

from importlib import resources

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import exc, inspect, text

# the tables declared outside server/storage, on the shared metadata
import server.bench.tables
import server.notify.tables  # noqa: F401
from server.storage.db import make_engine
from server.storage.migrate import current_revision, head_revision, upgrade
from server.storage.tables import Base

TABLES = {"bench_requests", "bench_runs", "bench_run_gpus", "bench_figures"}
_ROW = (
    "INSERT INTO bench_requests (request_id, node_id, node_name, open_node_id, state, level, "
    "force, created_at, created_by, expires_at, deadline_at, updated_at, cancel_requested, "
    "message) VALUES (:id, 'n1', 'gpu01', :open, 'pending', 'quick', false, 1, 'admin', 2, 2, "
    "1, false, '')"
)


def test_0009_up_and_down(database_url: str) -> None:
    engine = make_engine(database_url)
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("server.storage").joinpath("migrations"))
    )
    config.attributes["engine"] = engine
    try:
        command.upgrade(config, "0008")
        assert not TABLES & set(inspect(engine).get_table_names())
        assert upgrade(engine) == ("0008", head_revision(engine))  # later ones ride along
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        with engine.begin() as conn:
            conn.execute(text(_ROW), {"id": "a", "open": "n1"})
            conn.execute(text(_ROW), {"id": "b", "open": None})  # closed ones never collide
            conn.execute(text(_ROW), {"id": "c", "open": None})
        with pytest.raises(exc.IntegrityError), engine.begin() as conn:
            conn.execute(text(_ROW), {"id": "d", "open": "n1"})  # a second open one
        command.downgrade(config, "0008")
        assert not TABLES & set(inspect(engine).get_table_names())
        assert current_revision(engine) == "0008"
    finally:
        engine.dispose()
