"""Two compactors on one window (a leader that lost its lock mid-pass and the new leader) never
lose a sample: the one that read the head first and writes last finds its head rows gone and
writes nothing, instead of replacing the newer blocks with older ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, select

from agent.wire.codec import encode_batch
from agent.wire.schema import MetricFamily
from server.auth import Principal, Role
from server.storage.compactor import Compactor
from server.storage.tables import BlockRow, HeadChunkRow
from server.storage.writer import Writer
from tests.factories import make_batch
from tests.server.conftest import FakeClock
from tests.server.storage.helpers import GAUGE, LABELS, push_stream, server, services, stream

T = TypeVar("T")
INTERVAL = 60.0
TICKS = 120  # two hours: closed 1-hour windows and the open one


class InterleavingWriter(Writer):
    """Runs ``before`` once, just before the first job is handed to the writer thread."""

    def __init__(self, engine: Engine, before: Callable[[], None]) -> None:
        super().__init__(engine)
        self._before: Callable[[], None] | None = before

    def submit(self, job: Callable[[Connection], T]) -> T:
        if self._before is not None:
            before, self._before = self._before, None
            before()
        return super().submit(job)


def test_a_compactor_that_read_stale_head_rows_writes_nothing(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    rows = stream(clock.now - TICKS * INTERVAL, TICKS, INTERVAL)
    with server(tmp_path, database_url, clock) as (app, _client):
        push_stream(app, rows, INTERVAL, clock)
        clock.now += 600
        found = services(app)
        engine = found.store.engine
        late_ts = rows[0][0] + 30.0  # inside the closed window, between two samples

        def late_batch_then_other_compactor() -> None:
            batch = make_batch(
                seq=10_000,
                timestamp=late_ts,
                interval=INTERVAL,
                with_inventory=False,
                metrics=[MetricFamily(name=GAUGE, samples=[(dict(LABELS), -1.0)])],
            )
            ack = found.ingest.ingest(encode_batch(batch), "gzip", Principal(Role.INGEST, "t"))
            assert ack.status == "accepted", ack
            other = Compactor(engine, found.store.writer, found.plan, clock)
            assert other.compact().windows >= 1

        stale_writer = InterleavingWriter(engine, late_batch_then_other_compactor)
        try:
            stale = Compactor(engine, stale_writer, found.plan, clock)
            stale.compact()
        finally:
            stale_writer.close()

        series = [item for items in found.store.index.metric(GAUGE).values() for item in items]
        start_ms = round(rows[0][0] * 1000) - 1
        stamps, values = found.reader.raw(series, start_ms, round(rows[-1][0] * 1000))[series[0].id]
        expected = sorted(
            [(round(ts * 1000), gauge) for ts, gauge, _ in rows] + [(round(late_ts * 1000), -1.0)]
        )
        assert list(zip(stamps.tolist(), values.tolist(), strict=True)) == expected
        with engine.connect() as conn:
            head_rows = conn.execute(select(func.count()).select_from(HeadChunkRow)).scalar_one()
            gauge_samples = conn.execute(
                select(func.coalesce(func.sum(BlockRow.count), 0)).where(
                    BlockRow.tier == 0, BlockRow.series_id == series[0].id
                )
            ).scalar_one()
        # The raw blocks hold each closed sample once; the head only the open window's rows.
        closed_rows = sum(1 for ts, _, _ in rows if ts * 1000 <= _closed(found, clock))
        assert gauge_samples == closed_rows + 1, "the closed window's samples and the late one"
        assert head_rows == len(rows) - closed_rows


def _closed(found: Any, clock: FakeClock) -> int:
    closed: int = found.plan.closed_until(round(clock.now * 1000))
    return closed
