"""Series lifecycle: a series goes when nobody wrote it for longer than the raw retention and no
tier holds its data; it comes back (with a new id) when written again, also through a server
process whose index still knows the old id; two processes creating one series at once share
its row; a series' last write reaches the database in bulk, not with every batch; and the
upgrade counts existing series as just written."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import event, func, insert, select

from agent.wire.codec import encode_batch
from agent.wire.schema import Ack, MetricFamily
from server.app import create_app, run_maintenance
from server.auth import Principal, Role
from server.deps import Services
from server.settings import ServerSettings
from server.storage.db import make_engine
from server.storage.migrate import upgrade
from server.storage.series_index import canonical_labels
from server.storage.tables import SeriesRow
from server.tokens import sha256_hex
from tests.factories import default_metrics, make_batch
from tests.server.conftest import START, TOKEN, FakeClock

HOUR_S = 3600.0
JOB = MetricFamily(
    name="dcmon_job_gpu_info",
    samples=[({"job_id": "42", "scheduler": "slurm", "gpu": "0", "UUID": "GPU-0"}, 1.0)],
)
CALLER = Principal(Role.INGEST, "test")


@contextmanager
def _app(
    tmp_path: Path, database_url: str, clock: FakeClock, **overrides: Any
) -> Iterator[FastAPI]:
    """An app driven directly (no background maintenance), with every tier kept one hour."""
    settings = ServerSettings(
        data_dir=tmp_path,
        database_url=database_url,
        ingest_token_sha256=[sha256_hex(TOKEN)],
        raw_retention_seconds=HOUR_S,
        rollup_1m_retention_seconds=HOUR_S,
        rollup_1h_retention_seconds=HOUR_S,
        **overrides,
    )
    app = create_app(settings, clock=clock)
    try:
        yield app
    finally:
        _services(app).store.writer.close()
        _services(app).store.engine.dispose()


def _services(app: FastAPI) -> Services:
    services: Services = app.state.services
    return services


def _push(app: FastAPI, seq: int, clock: FakeClock, job: bool) -> Ack:
    metrics = [*default_metrics(), JOB] if job else default_metrics()
    batch = make_batch(seq=seq, timestamp=clock.now, metrics=metrics, with_inventory=seq == 1)
    return _services(app).ingest.ingest(encode_batch(batch), "gzip", CALLER)


def _job_ids(app: FastAPI) -> list[int]:
    """Returns: the ids of the job series in the table."""
    table = SeriesRow.__table__
    with _services(app).store.engine.connect() as conn:
        rows = conn.execute(select(table.c.id).where(table.c.metric == JOB.name))
        return [row.id for row in rows]


def _indexed_job(app: FastAPI) -> list[int]:
    return [
        item.id for items in _services(app).store.index.metric(JOB.name).values() for item in items
    ]


def test_a_series_goes_once_unwritten_past_the_raw_retention_and_out_of_every_tier(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    with _app(tmp_path, database_url, clock) as app:
        services = _services(app)
        assert _push(app, 1, clock, job=True).samples == 7
        [job_id] = _job_ids(app)
        seq = 1
        # The node goes on pushing its host metrics every 10 minutes, without the job.
        gone_at = None
        while clock.now < START + 3 * 86_400:
            clock.now += 600
            seq += 1
            assert _push(app, seq, clock, job=False).samples == 6
            run_maintenance(services)
            if gone_at is None and not _job_ids(app):
                gone_at = clock.now
            if clock.now < START + 2 * HOUR_S:  # unwritten, but not for a raw retention yet
                assert _job_ids(app) == [job_id]
        assert gone_at is not None, "the job series was never deleted"
        # Its 1-hour block spans its UTC day: the series goes once that day is past retention.
        day_end = (START // 86_400 + 1) * 86_400
        assert day_end + HOUR_S < gone_at <= day_end + HOUR_S + 600
        assert _indexed_job(app) == []
        assert services.store.index.label_values("job_id") == set()
        assert len(services.store.index) == 6  # the host series stay
        # Written again, it is a new series, stored like any other.
        clock.now += 600
        assert _push(app, seq + 1, clock, job=True).samples == 7
        [new_id] = _job_ids(app)
        assert new_id != job_id and _indexed_job(app) == [new_id]


def test_a_series_another_process_deleted_is_created_again_on_its_next_write(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    # Two server processes on one database: ``writer_app`` keeps the job series in its index,
    # ``leader`` runs maintenance and deletes the series once nobody writes it.
    with (
        _app(tmp_path, database_url, clock) as leader,
        _app(tmp_path, database_url, clock) as writer_app,
    ):
        assert _push(writer_app, 1, clock, job=True).samples == 7
        [old_id] = _job_ids(writer_app)
        seq = 1
        while _job_ids(leader):
            clock.now += 3600
            seq += 1
            assert _push(leader, seq, clock, job=False).samples == 6
            run_maintenance(_services(leader))
            assert clock.now < START + 4 * 86_400, "the job series was never deleted"
        assert _indexed_job(writer_app) == [old_id]  # stale: it never ran maintenance
        seq += 1
        ack = _push(writer_app, seq, clock, job=True)
        assert (ack.status, ack.samples) == ("accepted", 7)
        [new_id] = _job_ids(writer_app)
        assert new_id != old_id and _indexed_job(writer_app) == [new_id]
        # The sample went to the new series, not to the deleted id.
        series = _services(writer_app).store.index.metric(JOB.name)
        history = _services(writer_app).reader.raw(
            [item for items in series.values() for item in items], 0, round(clock.now * 1000)
        )
        assert history[new_id][1].tolist() == [1.0]


def test_last_writes_reach_the_series_table_in_bulk_not_with_every_batch(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    window = 3600.0  # touched again once a quarter of it (15 minutes) old
    with _app(tmp_path, database_url, clock, active_series_window_seconds=window) as app:
        engine = _services(app).store.engine
        updates: list[str] = []

        def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            if statement.lstrip().upper().startswith("UPDATE SERIES"):
                updates.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        for seq in range(1, 90):  # 10 s apart: 880 s, just short of 15 minutes
            clock.now = START + (seq - 1) * 10
            _push(app, seq, clock, job=False)
        assert updates == []
        clock.now = START + 901
        _push(app, 90, clock, job=False)
        assert len(updates) == 1  # one statement for all six series
        table = SeriesRow.__table__
        with engine.connect() as conn:
            seen = conn.execute(select(func.min(table.c.last_seen_ms))).scalar_one()
        assert seen == round(clock.now * 1000)
        event.remove(engine, "before_cursor_execute", count)


def test_the_upgrade_counts_existing_series_as_written_at_the_upgrade(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("server.storage").joinpath("migrations"))
    )
    config.attributes["engine"] = engine
    command.upgrade(config, "0004")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO nodes (id, node_id, name, hostname, labels, interval_seconds, first_seen,"
            " last_push, last_batch_ts, last_seq, host_facts, gpu_status) VALUES "
            "(1, '0123456789abcdef0123456789abcdef', 'gpu01', 'gpu01', '{}', 10, 1, 1, 1, 7,"
            " '{}', '')"
        )
        conn.exec_driver_sql(
            "INSERT INTO series (node_pk, metric, labels) VALUES (1, 'node_load1', '{}')"
        )
    before = time.time() * 1000
    upgrade(engine)
    with engine.connect() as conn:
        seen = conn.execute(select(SeriesRow.__table__.c.last_seen_ms)).scalar_one()
    assert before - 1000 <= seen <= time.time() * 1000 + 1000
    engine.dispose()


def test_the_active_window_may_not_outlast_the_raw_retention(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="must not exceed raw_retention_seconds"):
        ServerSettings(
            data_dir=tmp_path, raw_retention_seconds=HOUR_S, active_series_window_seconds=2 * HOUR_S
        )


def test_two_processes_creating_the_same_series_at_once_share_its_row(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    with _app(tmp_path, database_url, clock) as other, _app(tmp_path, database_url, clock) as app:
        assert _push(app, 1, clock, job=False).samples == 6
        # Another server process is creating the job series: its insert is not committed yet.
        labels = canonical_labels(JOB.samples[0][0])
        conn = _services(other).store.engine.connect()
        transaction = conn.begin()
        conn.execute(
            insert(SeriesRow.__table__).values(
                node_pk=1, metric=JOB.name, labels=labels, last_seen_ms=0
            )
        )
        acks: list[Ack] = []
        pusher = threading.Thread(target=lambda: acks.append(_push(app, 2, clock, job=True)))
        pusher.start()
        pusher.join(0.5)
        assert pusher.is_alive()  # waiting on the other process's row
        transaction.commit()
        conn.close()
        pusher.join(10)
        assert [(ack.status, ack.samples) for ack in acks] == [("accepted", 7)]
        assert _job_ids(app) == _indexed_job(app)  # one row, and the write used it
        assert len(_job_ids(app)) == 1
