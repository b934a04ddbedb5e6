"""Migration 0002 (events and jobs): applies on an empty database and on one made by 0001,
keeping what 0001's schema holds, and goes back down cleanly."""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect

from server.storage.db import make_engine
from server.storage.migrate import current_revision, head_revision, upgrade
from server.storage.tables import Base
from tests.factories import make_batch
from tests.server.conftest import START, push

NEW_TABLES = {"gpu_events", "jobs", "job_gpus"}


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("server.storage").joinpath("migrations"))
    )
    config.attributes["engine"] = engine
    return config


def test_upgrade_on_an_empty_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    before, after = upgrade(engine)
    assert (before, after) == (None, head_revision(engine))
    assert set(inspect(engine).get_table_names()) >= NEW_TABLES
    engine.dispose()


def test_upgrade_from_0001_keeps_the_data(make_app, tmp_path: Path) -> None:
    db = tmp_path / "dcmon.db"
    engine = make_engine(f"sqlite:///{db}")
    command.upgrade(_config(engine), "0001")
    assert current_revision(engine) == "0001"
    assert not NEW_TABLES & set(inspect(engine).get_table_names())
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO nodes (node_id, name, hostname, labels, interval_seconds, first_seen, "
            "last_push, last_batch_ts, last_seq, host_facts, gpu_status) VALUES "
            "('0123456789abcdef0123456789abcdef', 'gpu01', 'gpu01', '{}', 10, 1, 1, 1, 7, "
            "'{}', '')"
        )
    engine.dispose()

    # The server migrates at start-up; the old node is still there and new data flows.
    with TestClient(make_app()) as client:
        assert [n["name"] for n in client.get("/api/v1/nodes").json()["nodes"]] == ["gpu01"]
        assert push(client, make_batch(seq=8, timestamp=START)).status_code == 200
        assert client.get("/api/v1/events").json() == {"events": []}
        assert client.get("/api/v1/jobs").json() == {"jobs": []}
    engine = make_engine(f"sqlite:///{db}")
    assert current_revision(engine) == head_revision(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT last_seq FROM nodes").fetchone()[0] == 8


def test_downgrade_to_0001_drops_only_the_new_tables(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'down.db'}")
    upgrade(engine)
    command.downgrade(_config(engine), "0001")
    tables = set(inspect(engine).get_table_names())
    assert not NEW_TABLES & tables
    assert tables >= {"nodes", "gpus", "series", "samples", "ingested_batches"}
    assert current_revision(engine) == "0001"
    engine.dispose()
