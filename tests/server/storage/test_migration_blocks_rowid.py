"""Migration 0012 (blocks in a rowid table on SQLite) on both backends: up from 0011 with
blocks in place, every block kept bit for bit, the schema equal to the table definitions, the
primary key still enforced, and back down."""

from __future__ import annotations

from importlib import resources

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, exc, text

# the tables declared outside server/storage, on the shared metadata
import server.bench.tables
import server.notify.tables  # noqa: F401
from server.storage.db import make_engine
from server.storage.migrate import current_revision, head_revision, upgrade
from server.storage.tables import Base

_INSERT = "INSERT INTO blocks VALUES (:series_id, :tier, :end_ms, :count, :payload)"
ROWS = [
    {"series_id": s, "tier": t, "end_ms": e, "count": s + e, "payload": bytes([s, t, e]) * 40}
    for s in (3, 1, 2)
    for t in (0, 1, 2)
    for e in (20, 10)
]


def _blocks(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM blocks ORDER BY series_id, tier, end_ms"))
        return [tuple(row) for row in rows]


def _without_rowid(engine: Engine) -> bool:
    with engine.connect() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'blocks'")).scalar()
    return "WITHOUT ROWID" in str(sql).upper()


def test_0012_up_and_down(database_url: str) -> None:
    engine = make_engine(database_url)
    sqlite = engine.dialect.name == "sqlite"
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("server.storage").joinpath("migrations"))
    )
    config.attributes["engine"] = engine
    try:
        command.upgrade(config, "0011")
        with engine.begin() as conn:
            conn.execute(text(_INSERT), ROWS)
        before = _blocks(engine)
        assert len(before) == len(ROWS)
        if sqlite:
            assert _without_rowid(engine)
        assert upgrade(engine) == ("0011", head_revision(engine))
        assert _blocks(engine) == before
        if sqlite:
            assert not _without_rowid(engine)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        with pytest.raises(exc.IntegrityError), engine.begin() as conn:
            conn.execute(text(_INSERT), ROWS[0])  # the primary key still holds
        command.downgrade(config, "0011")
        assert current_revision(engine) == "0011"
        assert _blocks(engine) == before
        if sqlite:
            assert _without_rowid(engine)
    finally:
        engine.dispose()
