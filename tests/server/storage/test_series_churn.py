"""Series churn over simulated weeks: short-lived job series never stop a node's batches.

One node pushes host and GPU metrics every 10 minutes, plus ``dcmon_job_gpu_info`` for its
running jobs: 5 new jobs every other tick, each on 8 GPUs for 2 ticks, so 60,000 distinct
series over about three weeks of a fake clock, with maintenance (compaction, retention, series
lifecycle) every hour. (A job stays within one storage window, so each series is compacted
once: compaction, not the lifecycle, is most of this test's time. On PostgreSQL a smaller run,
6,000 series over two days with every tier kept one hour.)

Every batch must be stored whole (nothing refused, host metrics included), the series index
must stay bounded by what the retention keeps, and the rows of old series must be gone.

With series that are never forgotten and a limit that counts every series a node ever made,
the batch that brings the 20,001st series is refused whole (422 ``cardinality_limit``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from agent.wire.codec import encode_batch
from agent.wire.schema import MetricFamily
from server.app import create_app, run_maintenance
from server.auth import Principal, Role
from server.deps import Services
from server.settings import ServerSettings
from server.storage.tables import SeriesRow
from server.tokens import sha256_hex
from tests.factories import default_metrics, make_batch
from tests.server.conftest import START, TOKEN, FakeClock

INTERVAL_S = 600.0
GPUS = 8
JOBS_PER_START = 5
NEW_SERIES_PER_TICK = JOBS_PER_START * GPUS / 2
DAY_S = 86_400.0
HOUR_S = 3600.0
SCALES = {  # backend -> series made, and retention of the raw, 1m and 1h tiers in seconds
    "sqlite": (60_000, 1 * DAY_S, 2 * DAY_S, 3 * DAY_S),
    "postgresql": (6_000, HOUR_S, HOUR_S, HOUR_S),  # a smaller run: two simulated days
}
HOST_SAMPLES = 6  # default_metrics (4) + the two collector-status series


def _jobs(tick: int) -> MetricFamily:
    """The job-GPU info series of the jobs running at ``tick``: those started at the odd tick
    of its pair (ticks 1-2, 3-4, 5-6 of each hour's window of 6)."""
    start = tick if tick % 2 else tick - 1
    samples = [
        (
            {
                "job_id": f"{start}.{k}",
                "scheduler": "slurm",
                "user": "alice",
                "gpu": str(gpu),
                "UUID": f"GPU-{gpu}",
                "pci_bus_id": f"00000000:{gpu:02X}:00.0",
                "Hostname": "gpu01",
            },
            1.0,
        )
        for k in range(JOBS_PER_START)
        for gpu in range(GPUS)
    ]
    return MetricFamily(name="dcmon_job_gpu_info", samples=samples)


def _series_rows(services: Services, **where: str) -> int:
    table = SeriesRow.__table__
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with services.store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_job_series_churn_never_stops_a_node_and_old_series_are_forgotten(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    total_series, raw_s, minute_s, hour_s = SCALES[make_url(database_url).get_backend_name()]
    ticks = math.ceil(total_series / NEW_SERIES_PER_TICK)
    settings = ServerSettings(
        data_dir=tmp_path,
        database_url=database_url,
        ingest_token_sha256=[sha256_hex(TOKEN)],
        maintenance_interval_seconds=3600,
        raw_retention_seconds=raw_s,
        rollup_1m_retention_seconds=minute_s,
        rollup_1h_retention_seconds=hour_s,
    )
    # What retention can still hold: 1-hour blocks span a UTC day and go when the whole day
    # is older than their horizon; the lifecycle runs hourly after retention.
    kept_ticks = (hour_s + DAY_S + 2 * HOUR_S) / INTERVAL_S
    bound = round((kept_ticks + 2) * NEW_SERIES_PER_TICK) + HOST_SAMPLES
    caller = Principal(Role.INGEST, "test")
    app = create_app(settings, clock=clock)  # driven directly, without its background loop
    services: Services = app.state.services
    index = services.store.index
    largest = 0
    try:
        for tick in range(1, ticks + 1):
            clock.now = START + tick * INTERVAL_S
            metrics = [*default_metrics(gpu_util=float(tick % 100)), _jobs(tick)]
            batch = make_batch(
                seq=tick,
                timestamp=clock.now,
                interval=INTERVAL_S,
                metrics=metrics,
                with_inventory=tick == 1,
            )
            ack = services.ingest.ingest(encode_batch(batch), "gzip", caller)
            expected = HOST_SAMPLES + len(metrics[-1].samples)
            assert (ack.status, ack.samples, ack.refused) == ("accepted", expected, []), tick
            largest = max(largest, len(index))
            if tick % round(HOUR_S / INTERVAL_S) == 0:
                run_maintenance(services)
        jobs = {item[0]["job_id"] for tick in range(1, ticks + 1) for item in _jobs(tick).samples}
        made = len(jobs) * GPUS
        assert made >= total_series
        assert largest <= bound < made * 0.6, (largest, bound)
        assert len(index) == _series_rows(services)
        # The first jobs' series are gone from the table and the index; the newest are there.
        assert _series_rows(services, metric="dcmon_job_gpu_info") < bound
        first_job = {'"job_id":"1.0"' in item.labels_json for item in index.node(1)}
        assert first_job == {False}
        newest = {item[0]["job_id"] for item in _jobs(ticks).samples}
        assert index.label_values("job_id") >= newest
        assert len(index.label_values("job_id")) <= bound // GPUS
        # Host metrics never stopped: the raw tier holds every tick of its retention.
        host = [item for item in index.node(1) if item.metric == "node_load1"]
        samples = services.reader.raw(host, 0, round(clock.now * 1000))[host[0].id]
        assert len(samples[0]) == round(raw_s / INTERVAL_S) + 1
    finally:
        services.store.writer.close()
        services.store.engine.dispose()
