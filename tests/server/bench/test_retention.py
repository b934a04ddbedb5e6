"""Retention of benchmark rows on both backends: ended requests past the retention go with
their runs, devices and figures; open requests, young ones and each device's latest run (and
latest figure of each test) stay; the leader's maintenance pass runs it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from agent.wire.bench import BenchReport, BenchRun
from agent.wire.skus import default_table
from server.app import run_maintenance
from server.bench.model import NewRequest
from server.bench.requests import RequestStore
from server.bench.results import ResultStore
from server.bench.retention import BenchPruned, BenchRetention
from server.bench.tables import BenchFigureRow, BenchRequestRow, BenchRunGpuRow, BenchRunRow
from server.storage.db import make_engine
from server.storage.migrate import upgrade
from server.storage.writer import Writer
from tests.server.bench.conftest import ADMIN, Bench, device, result
from tests.server.conftest import START, FakeClock

NODE_ID = "0123456789abcdef0123456789abcdef"
DAY = 86400.0
RETENTION = 400 * DAY
NEW = NewRequest("quick", None, None, False, 600.0, "admin")
BOTH = {"matmul_bf16": 790.0, "memory_copy": 3000.0}
MATMUL = {"matmul_bf16": 790.0}


class Fleet:
    """The stores of one replica over the test's database, and a way to end requests."""

    def __init__(self, engine: Engine, writer: Writer, clock: FakeClock) -> None:
        self.engine = engine
        self.writer = writer
        self.clock = clock
        self.requests = RequestStore(engine, writer, clock)
        self.results = ResultStore(engine, default_table())
        self.retention = BenchRetention(engine, writer, clock, RETENTION)

    def run(self, *devices: dict[str, Any], state: str = "done") -> str:
        """A request whose run of ``devices`` is reported ``state`` now; returns its id."""
        (request,) = self.requests.create(NEW, ["gpu01"]).created
        rid = request.request_id
        self.requests.report(rid, NODE_ID, BenchReport(state="running"), self.results.store_run)
        run = BenchRun.model_validate(result(list(devices), started_at=self.clock.now))
        final = BenchReport(state=state, result=run)  # type: ignore[arg-type]
        self.requests.report(rid, NODE_ID, final, self.results.store_run)
        return rid

    def kept(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(BenchRequestRow.request_id)).scalars())

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                row.__tablename__: conn.execute(select(func.count()).select_from(row)).scalar_one()
                for row in (BenchRequestRow, BenchRunRow, BenchRunGpuRow, BenchFigureRow)
            }

    def orphans(self) -> int:
        """Rows whose run or request is gone: what a half-done deletion would leave."""
        runs, requests = BenchRunRow.__table__.c, BenchRequestRow.__table__.c
        with self.engine.connect() as conn:
            found = 0
            for child in (BenchRunGpuRow, BenchFigureRow):
                column = child.__table__.c.run_id
                found += conn.execute(
                    select(func.count()).where(column.not_in(select(runs.id)))
                ).scalar_one()
            found += conn.execute(
                select(func.count()).where(runs.request_id.not_in(select(requests.request_id)))
            ).scalar_one()
            return int(found)


@pytest.fixture
def fleet(database_url: str, clock: FakeClock) -> Iterator[Fleet]:
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO nodes (node_id, name, hostname, labels, interval_seconds, "
                "first_seen, last_push, last_batch_ts, last_seq, host_facts, gpu_status) VALUES "
                "(:id, 'gpu01', 'gpu01', '{}', 10, 1, 1, 1, 1, '{}', '')"
            ),
            {"id": NODE_ID},
        )
    writer = Writer(engine)
    try:
        yield Fleet(engine, writer, clock)
    finally:
        writer.close()
        engine.dispose()


def test_old_ended_requests_go_with_every_row_and_young_ones_stay(fleet: Fleet) -> None:
    old_done = fleet.run(device(0, BOTH, uuid="GPU-a"), device(1, BOTH, uuid="GPU-b"))
    fleet.clock.now += DAY
    old_failed = fleet.run(device(0, BOTH, uuid="GPU-a"), state="failed")
    (cancelled,) = fleet.requests.create(NEW, ["gpu01"]).created  # ended with no run
    fleet.requests.cancel(cancelled.request_id, "admin")
    fleet.clock.now = START + 31 * DAY
    young = fleet.run(device(0, BOTH, uuid="GPU-a"), device(1, BOTH, uuid="GPU-b"))
    fleet.clock.now += DAY
    latest = fleet.run(device(0, BOTH, uuid="GPU-a"), device(1, BOTH, uuid="GPU-b"))
    before = fleet.results.latest_figures(0.0), fleet.results.latest_devices(0.0)
    everything = {old_done, old_failed, cancelled.request_id, young, latest}
    fleet.clock.now = START + RETENTION  # the first ended exactly one retention ago
    assert fleet.retention.prune().requests == 0
    assert fleet.kept() == everything
    # the first three ended longer ago than the retention; the fourth, superseded, did not
    fleet.clock.now = START + 30 * DAY + RETENTION
    pruned = fleet.retention.prune()
    assert (pruned.requests, pruned.runs) == (3, 2)
    assert fleet.kept() == {young, latest}
    assert fleet.counts() == {
        "bench_requests": 2,
        "bench_runs": 2,
        "bench_run_gpus": 4,
        "bench_figures": 8,
    }
    assert fleet.orphans() == 0
    assert (fleet.results.latest_figures(0.0), fleet.results.latest_devices(0.0)) == before
    fleet.clock.now = START + 31 * DAY + RETENTION + 1
    assert fleet.retention.prune() == BenchPruned(1, 1)
    assert fleet.kept() == {latest}
    assert fleet.orphans() == 0
    assert fleet.retention.prune() == BenchPruned(0, 0)


def test_open_requests_stay_whatever_their_age(fleet: Fleet) -> None:
    (pending,) = fleet.requests.create(NEW, ["gpu01"]).created
    fleet.clock.now += 2 * RETENTION  # nobody expired it meanwhile: it is still open
    assert fleet.retention.prune().requests == 0
    assert fleet.kept() == {pending.request_id}
    assert fleet.requests.expire_due() == 1  # once final, it may go
    fleet.clock.now += RETENTION + 1
    assert fleet.retention.prune().requests == 1
    assert fleet.kept() == set()


def test_a_devices_latest_run_stays_whatever_its_age(fleet: Fleet) -> None:
    both = fleet.run(device(0, BOTH, uuid="GPU-a"), device(1, BOTH, uuid="GPU-b"))
    fleet.clock.now += DAY
    only_a = fleet.run(device(0, BOTH, uuid="GPU-a"))
    fleet.clock.now += 3 * RETENTION
    before = fleet.results.latest_figures(0.0), fleet.results.latest_devices(0.0)
    assert fleet.retention.prune().requests == 0  # GPU-b's latest run, and GPU-a's
    assert fleet.kept() == {both, only_a}
    assert (fleet.results.latest_figures(0.0), fleet.results.latest_devices(0.0)) == before
    again = fleet.run(device(0, BOTH, uuid="GPU-a"), device(1, BOTH, uuid="GPU-b"))
    fleet.clock.now += RETENTION + 1
    assert fleet.retention.prune().requests == 2
    assert fleet.kept() == {again}
    assert fleet.orphans() == 0


def test_the_run_of_a_devices_latest_figure_of_a_test_stays(fleet: Fleet) -> None:
    """A quick run after a standard one measures less: the standard one's other figures are
    still the device's latest and stay; a figure that was not measured does not count."""
    standard = fleet.run(device(0, BOTH, uuid="GPU-a"))
    fleet.clock.now += DAY
    quick = fleet.run(device(0, BOTH, uuid="GPU-a", statuses={"memory_copy": "error"}))
    fleet.clock.now += DAY
    newest = fleet.run(device(0, MATMUL, uuid="GPU-a"))
    fleet.clock.now += 2 * RETENTION
    assert fleet.retention.prune().requests == 1
    assert fleet.kept() == {standard, newest}  # the quick one held no latest figure
    assert quick not in fleet.kept()
    copies = [f for f in fleet.results.latest_figures(0.0) if f.test == "memory_copy"]
    assert [f.request_id for f in copies] == [standard]
    fleet.run(device(0, BOTH, uuid="GPU-a"))
    fleet.clock.now += RETENTION + 1
    assert fleet.retention.prune().requests == 2
    assert standard not in fleet.kept() and newest not in fleet.kept()


def test_a_backlog_goes_in_bounded_chunks(fleet: Fleet) -> None:
    made = [fleet.run(device(0, MATMUL, uuid=f"GPU-{i}"), device(1, MATMUL)) for i in range(5)]
    for i in range(5):  # a later run of each device, so the first five may go
        fleet.run(device(0, MATMUL, uuid=f"GPU-{i}"), device(1, MATMUL))
    fleet.clock.now += 2 * RETENTION
    chunked = BenchRetention(fleet.engine, fleet.writer, fleet.clock, RETENTION, chunk=2)
    pruned = chunked.prune()
    # device 1 has no UUID: its key is gpu01/cuda1, the same in every run; its latest run is
    # the last one, which also holds GPU-4's latest
    assert (pruned.requests, pruned.runs) == (5, 5)
    assert not fleet.kept() & set(made)
    assert fleet.counts()["bench_runs"] == 5 and fleet.orphans() == 0


def test_the_maintenance_pass_prunes_with_the_settings_retention(bench: Bench) -> None:
    bench.node("gpu01")
    old = bench.run("gpu01", result([device(0, BOTH, uuid="GPU-a")], started_at=START))
    bench.clock.now += DAY
    latest = bench.run("gpu01", result([device(0, BOTH, uuid="GPU-a")], started_at=bench.clock.now))
    assert bench.services.settings.bench_retention_seconds == RETENTION  # the default
    bench.clock.now = START + RETENTION + 1
    run_maintenance(bench.services)
    assert bench.client.get(f"/api/v1/bench/requests/{old}", headers=ADMIN).status_code == 404
    assert bench.get(latest)["state"] == "done"
