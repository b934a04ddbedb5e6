"""Migration 0010 (hint tables) on both backends: up from 0009, the schema equal to the table
definitions, refs going with their hint, and back down."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

# the tables declared outside server/storage, on the shared metadata
import server.bench.tables
import server.notify.tables
import server.rebalancing.tables  # noqa: F401
from server.storage.db import make_engine
from server.storage.migrate import current_revision, upgrade
from server.storage.tables import Base

TABLES = {"hints", "hint_refs"}
_HINT = (
    "INSERT INTO hints (id, kind, remedy, actions, evidence, gain_gpus, gain_gpu_hours, "
    "gain_watts, cost_moves, cost_restart_s, confidence, reason, first_seen, last_seen, "
    "missed_rounds, state, state_changed_at, state_changed_by, note) VALUES ('h1', 'drain', "
    "'cordon', '[]', '[]', 0, 1, 0, 0, 0, 0.9, '', 1, 1, 0, 'new', 1, 'engine', '')"
)


def test_0010_up_and_down(database_url: str) -> None:
    engine = make_engine(database_url)
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("server.storage").joinpath("migrations"))
    )
    config.attributes["engine"] = engine
    try:
        command.upgrade(config, "0009")
        assert not TABLES & set(inspect(engine).get_table_names())
        before, head = upgrade(engine)  # to the head: later revisions may follow 0010
        assert before == "0009" and head >= "0010"
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        with engine.begin() as conn:
            conn.execute(text(_HINT))
            conn.execute(text("INSERT INTO hint_refs VALUES ('h1', 'node', 'gpu01')"))
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM hints WHERE id = 'h1'"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM hint_refs")).scalar() == 0
        command.downgrade(config, "0009")
        assert not TABLES & set(inspect(engine).get_table_names())
        assert current_revision(engine) == "0009"
    finally:
        engine.dispose()
