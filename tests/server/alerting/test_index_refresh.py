"""On a shared database the rule evaluator learns the series other replicas create within a
second (``AlertingService._refresh_index``), including one whose id is lower than the newest it
already knows: series ids come from one sequence but commit out of order, so a replica's
transaction can commit id 100 after another's 101. Run on SQLite and, where installed,
PostgreSQL (``database_url``)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Table, insert, select

from server.alerting.notifier import MemoryNotifier
from server.alerting.service import AlertingService
from server.app import create_app
from server.auth.secrets import sha256_hex
from server.settings import ServerSettings
from server.storage.leader import InMemoryLeader, LockTable
from server.storage.tables import SeriesRow
from tests.factories import make_batch
from tests.server.conftest import START, TOKEN, FakeClock, push

_series: Table = SeriesRow.__table__  # type: ignore[assignment]


def test_a_series_committed_late_with_a_lower_id_is_learned(
    tmp_path: Path, database_url: str
) -> None:
    table = LockTable()
    clock = FakeClock(START)
    with ExitStack() as stack:
        clients = []
        for port in (8471, 8472):
            settings = ServerSettings(
                data_dir=tmp_path / str(port),
                database_url=database_url,
                listen_port=port,
                ingest_token_sha256=[sha256_hex(TOKEN)],
                open_reads=True,
                rules_shipped=False,
                maintenance_interval_seconds=3600,
            )
            app = create_app(
                settings, clock=clock, leader=InMemoryLeader(table), notifier=MemoryNotifier()
            )
            client = stack.enter_context(TestClient(app))
            client.app.state.alerting.stop()  # type: ignore[attr-defined]
            clients.append(client)
        first, second = clients
        alerting: AlertingService = first.app.state.alerting  # type: ignore[attr-defined]
        store = alerting._store
        assert push(second, make_batch()).status_code == 200  # series the first has not seen
        alerting._index_refreshed = -1.0
        alerting._refresh_index()
        with store.engine.connect() as conn:
            ids = conn.execute(select(_series.c.id)).scalars().all()
            node_pk = conn.execute(select(_series.c.node_pk)).scalars().first()
        assert ids and all(store.index.get(i) is not None for i in ids)
        # another replica's series commits with id newest + 10 and is learned...
        newest = max(ids)
        with store.engine.begin() as conn:
            row = {"node_pk": node_pk, "labels": "{}"}
            conn.execute(insert(_series).values(id=newest + 10, metric="early_metric", **row))
        alerting._index_refreshed = -1.0
        alerting._refresh_index()
        assert store.index.get(newest + 10) is not None
        # ...then a transaction that had taken the lower id newest + 5 commits
        with store.engine.begin() as conn:
            conn.execute(insert(_series).values(id=newest + 5, metric="late_metric", **row))
        alerting._index_refreshed = -1.0
        alerting._refresh_index()
        found = store.index.get(newest + 5)
        assert found is not None and found.metric == "late_metric"
