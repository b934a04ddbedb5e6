"""A read sees one snapshot of head and blocks: a window compacted by another process in the
middle of a read (head rows deleted and blocks inserted in one commit) is neither missing nor
counted twice. The compaction is interleaved deterministically: a cursor hook on the engine runs
it right after the read's first statement."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event

from server.storage.compactor import Compactor
from server.storage.series_index import IndexedSeries
from tests.server.conftest import FakeClock
from tests.server.storage.helpers import GAUGE, push_stream, server, services, stream

INTERVAL = 60.0
TICKS = 180  # three hours: three closed 1-hour windows and the open one


@contextmanager
def compaction_after_first_statement(
    engine: Engine, compactor: Compactor, done: list[int]
) -> Iterator[None]:
    """While active, the first statement this thread executes is followed by a full compaction
    (on the compactor's own connections), committed before the read's next statement."""
    reader_thread = threading.get_ident()
    armed = [True]

    def after(*_args: Any) -> None:
        if not armed[0] or threading.get_ident() != reader_thread:
            return
        armed[0] = False
        done.append(compactor.compact().windows)

    event.listen(engine, "after_cursor_execute", after)
    try:
        yield
    finally:
        event.remove(engine, "after_cursor_execute", after)


def _gauge(app: Any) -> list[IndexedSeries]:
    series = [item for items in services(app).store.index.metric(GAUGE).values() for item in items]
    assert len(series) == 1
    return series


@pytest.fixture
def fed(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[tuple[Any, Any]]:
    rows = stream(clock.now - TICKS * INTERVAL, TICKS, INTERVAL)
    with server(tmp_path, database_url, clock) as (app, _client):
        push_stream(app, rows, INTERVAL, clock)
        clock.now += 600  # past the grace of the last closed window
        yield app, rows


def _read_while_compacting(app: Any, read: Callable[[], Any]) -> Any:
    done: list[int] = []
    found = services(app)
    with compaction_after_first_statement(found.store.engine, found.compactor, done):
        result = read()
    assert done and done[0] >= 3, f"the compaction did not run in the middle of the read: {done}"
    return result


def test_raw_read_sees_every_sample_while_a_window_is_compacted(fed: tuple[Any, Any]) -> None:
    app, rows = fed
    series = _gauge(app)
    reader = services(app).reader
    start_ms = round(rows[0][0] * 1000) - 1
    end_ms = round(rows[-1][0] * 1000) + 1

    stamps, values = _read_while_compacting(app, lambda: reader.raw(series, start_ms, end_ms))[
        series[0].id
    ]

    assert len(stamps) == len(rows), "samples of the window being compacted went missing"
    assert stamps.tolist() == [round(ts * 1000) for ts, _, _ in rows]
    assert values.tolist() == [gauge for _, gauge, _ in rows]
    # And the compaction really moved them: the same read afterwards comes from blocks.
    assert reader.raw(series, start_ms, end_ms)[series[0].id][0].tolist() == stamps.tolist()


def test_rollup_read_sees_every_bucket_while_a_window_is_compacted(fed: tuple[Any, Any]) -> None:
    app, rows = fed
    series = _gauge(app)
    found = services(app)
    tier = found.plan.all[1]  # 1-minute buckets
    start_ms = round(rows[0][0] * 1000) - 120_000
    end_ms = round(rows[-1][0] * 1000) + 60_000

    buckets = _read_while_compacting(
        app, lambda: found.reader.buckets(series, tier, start_ms, end_ms)
    )[series[0].id]

    after = found.reader.buckets(series, tier, start_ms, end_ms)[series[0].id]
    assert int(np.sum(buckets.count)) == len(rows), "buckets of the compacted window went missing"
    assert buckets.end_ms.tolist() == after.end_ms.tolist()
    assert buckets.count.tolist() == after.count.tolist()
