"""Storage: migrations match the tables, retention deletes exactly what is old, a restarted
server serves the latest values at once."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient

from server.app import run_maintenance
from server.storage.db import make_engine
from server.storage.migrate import current_revision, head_revision, upgrade
from server.storage.tables import Base
from tests.factories import make_batch
from tests.server.conftest import START, FakeClock, push, row_counts


def test_migrations_create_exactly_the_declared_schema(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    upgrade(engine)  # idempotent
    assert current_revision(engine) == head_revision(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    engine.dispose()


def test_retention_hides_exactly_the_old_samples_and_deletes_whole_blocks(
    make_app, clock: FakeClock, tmp_path: Path
) -> None:
    app = make_app(raw_retention_seconds=3600)
    with TestClient(app) as client:
        for i, ts in enumerate([START, START + 1800, START + 3599, START + 3600]):
            clock.now = ts
            assert push(client, make_batch(seq=i, timestamp=ts)).status_code == 200
        per_batch = row_counts(tmp_path / "dcmon.db")["samples"] // 4
        clock.now = START + 3600 + 1800.5  # horizon = START + 1800.5
        run_maintenance(app.state.services)
        # The window (START - 1h, START] is wholly older than the horizon: its block is gone.
        # The window (START, START + 1h] straddles it: kept whole, but queries see only the
        # samples at or after the horizon.
        assert row_counts(tmp_path / "dcmon.db")["samples"] == 3 * per_batch
        points = client.get(
            "/api/v1/history",
            params={"metric": "node_load1", "start": START - 10, "end": clock.now},
        ).json()["series"][0]["points"]
        assert [p[0] for p in points] == [START + 3599, START + 3600]


def test_restarted_server_serves_latest_values_at_once(make_app, clock: FakeClock) -> None:
    with TestClient(make_app()) as client:
        push(client, make_batch(timestamp=START))
    clock.now += 5
    with TestClient(make_app()) as client:
        text = client.get("/metrics").text
        assert 'node_cpu_seconds_total{instance="gpu01",cpu="0",mode="idle"} 100' in text
        assert client.get("/api/v1/nodes").json()["nodes"][0]["state"] == "up"
        # The batch record survived too: a re-send is still recognised.
        assert push(client, make_batch(timestamp=START)).json()["status"] == "duplicate"
