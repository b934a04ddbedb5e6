"""Storage tiers on SQLite and PostgreSQL: compaction, rollups against raw data, late samples,
failures midway, retention."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from server.app import run_maintenance
from server.storage import blocks as block_codec
from tests.server.conftest import START, FakeClock
from tests.server.storage.helpers import (
    COUNTER,
    GAUGE,
    close,
    history,
    points,
    push_stream,
    server,
    services,
    stream,
)

BLOCK = 600.0
AGGREGATIONS = ("avg", "min", "max", "sum", "count", "last", "rate", "increase")


def _expected(
    samples: Sequence[tuple[float, float]], first: float, last: float, step: float, agg: str
) -> list[tuple[float, float]]:
    """The definition, sample by sample: point t summarises (t - step, t]; increase counts
    from the sample before the window (for the first window, only from within one step)."""
    out = []
    t = first
    while t <= last + 1e-9:
        inside = [(ts, v) for ts, v in samples if t - step < ts <= t]
        if inside:
            before = [
                (ts, v)
                for ts, v in samples
                if ts <= t - step and (t > first or ts > first - 2 * step)
            ]
            values = [v for _, v in inside]
            increase = 0.0
            previous = before[-1][1] if before else None
            for value in values:
                if previous is not None:
                    increase += value - previous if value >= previous else value
                previous = value
            result = {
                "avg": sum(values) / len(values),
                "min": min(values),
                "max": max(values),
                "sum": sum(values),
                "count": float(len(values)),
                "last": values[-1],
                "increase": increase,
                "rate": increase / step,
            }[agg]
            out.append((round(t, 3), result))
        t += step
    return out


def _compare(got: list[tuple[float, float]], want: list[tuple[float, float]]) -> None:
    assert [round(t, 3) for t, _ in got] == [t for t, _ in want]
    for (t, a), (_, b) in zip(got, want, strict=True):
        assert close(a, b), (t, a, b)


def _stored_samples(app: Any) -> int:
    with services(app).store.engine.connect() as conn:
        head = conn.execute(text("SELECT coalesce(sum(n), 0) FROM head_chunks")).scalar()
        raw = conn.execute(
            text("SELECT coalesce(sum(count), 0) FROM blocks WHERE tier = 0")
        ).scalar()
    return int(head or 0) + int(raw or 0)


def _head_rows(app: Any) -> int:
    with services(app).store.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM head_chunks")).scalar() or 0)


@pytest.mark.parametrize("step", [60.0, 300.0, 3600.0, 90.0])
def test_queries_through_every_tier_agree_with_the_raw_samples(
    tmp_path: Path, database_url: str, clock: FakeClock, step: float
) -> None:
    rows = stream(START, 2 * 360 + 17, 10.0)
    end = rows[-1][0]
    with server(
        tmp_path, database_url, clock, storage_block_seconds=BLOCK, compaction_grace_seconds=0
    ) as (app, client):
        push_stream(app, rows, 10.0, clock)
        gauge = [(ts, g) for ts, g, _ in rows]
        counter = [(ts, c) for ts, _, c in rows]

        def check(phase: str) -> None:
            for metric, samples in ((GAUGE, gauge), (COUNTER, counter)):
                for agg in AGGREGATIONS:
                    body = history(
                        client,
                        metric=metric,
                        start=START - 3600,
                        end=end + 60,
                        step=step,
                        aggregation=agg,
                    )
                    want_tier = {60.0: "1m", 300.0: "1m", 3600.0: "1h", 90.0: "raw"}[step]
                    assert body["tier"] == want_tier, phase
                    want = _expected(samples, body["start"], body["end"], step, agg)
                    _compare(points(body), want)

        check("head")
        clock.now = end + 2 * 3600
        run_maintenance(services(app))
        assert _head_rows(app) == 0
        check("blocks")
        assert _stored_samples(app) == 4 * len(rows)  # 2 sent + 2 collector status


def test_raw_history_is_identical_before_and_after_compaction(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    rows = stream(START, 400, 10.0)
    with server(tmp_path, database_url, clock, storage_block_seconds=BLOCK) as (app, client):
        push_stream(app, rows, 10.0, clock)
        params = {"metric": GAUGE, "start": START - 10, "end": rows[-1][0] + 10}
        before = points(history(client, **params))
        assert [round(t, 3) for t, _ in before] == [round(ts / 1, 3) for ts, _, _ in rows]
        clock.now = rows[-1][0] + 3600
        run_maintenance(services(app))
        assert _head_rows(app) == 0
        assert points(history(client, **params)) == before


def test_late_samples_merge_into_a_compacted_window(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    rows = stream(START, 120, 10.0)
    early, late = rows[::2], rows[1::2]
    with server(tmp_path, database_url, clock, storage_block_seconds=BLOCK) as (app, client):
        push_stream(app, early, 10.0, clock)
        clock.now = rows[-1][0] + 3600
        run_maintenance(services(app))
        assert _head_rows(app) == 0
        # A replayed backlog (agent after an outage): new sequence numbers, old timestamps.
        push_stream(app, late, 10.0, clock, first_seq=10_000)
        run_maintenance(services(app))
        assert _head_rows(app) == 0
        got = points(history(client, metric=GAUGE, start=START - 10, end=rows[-1][0] + 10))
        assert [round(t, 3) for t, _ in got] == [round(ts, 3) for ts, _, _ in rows]
        body = history(
            client, metric=GAUGE, start=START, end=rows[-1][0] + 60, step=60, aggregation="count"
        )
        assert sum(v for _, v in points(body)) == len(rows)


def test_a_compaction_that_fails_midway_loses_nothing_and_a_restart_finishes_it(
    tmp_path: Path, database_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = stream(START, 3 * 60 + 5, 10.0)  # three closed 10-minute windows and a bit
    params = {"metric": COUNTER, "start": START - 10, "end": rows[-1][0] + 10}
    with server(tmp_path, database_url, clock, storage_block_seconds=BLOCK) as (app, client):
        push_stream(app, rows, 10.0, clock)
        expected = points(history(client, **params))
        clock.now = rows[-1][0] + 3600
        real_encode = block_codec.encode
        calls = {"n": 0}

        def failing_encode(*args: Any, **kwargs: Any) -> bytes:
            calls["n"] += 1
            if calls["n"] > 12 + 5:  # 4 series x 3 tiers per window: the second one fails
                raise OSError("disk went away")
            return real_encode(*args, **kwargs)

        monkeypatch.setattr(block_codec, "encode", failing_encode)
        with pytest.raises(OSError):
            run_maintenance(services(app))
        monkeypatch.setattr(block_codec, "encode", real_encode)
        assert 0 < _head_rows(app) < len(rows)  # the first window moved, the rest did not
        assert points(history(client, **params)) == expected
        assert _stored_samples(app) == 4 * len(rows)  # 2 sent + 2 collector status
    with server(tmp_path, database_url, clock, storage_block_seconds=BLOCK) as (app, client):
        run_maintenance(services(app))
        assert _head_rows(app) == 0
        assert points(history(client, **params)) == expected
        assert _stored_samples(app) == 4 * len(rows)  # 2 sent + 2 collector status


def test_retention_deletes_exactly_what_falls_out_of_each_tier(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    interval = 300.0
    rows = stream(START, 3 * 288, interval)  # three days every 5 minutes
    end = rows[-1][0]
    retention = {"raw": 2 * 3600.0, "1m": 12 * 3600.0, "1h": 2 * 86400.0}
    with server(
        tmp_path,
        database_url,
        clock,
        storage_block_seconds=3600,
        raw_retention_seconds=retention["raw"],
        rollup_1m_retention_seconds=retention["1m"],
        rollup_1h_retention_seconds=retention["1h"],
    ) as (app, client):
        push_stream(app, rows, interval, clock)
        clock.now = end + 3600
        run_maintenance(services(app))  # compacts everything closed
        clock.now = end + 3 * 3600
        run_maintenance(services(app))  # then retention at a later time
        now_ms = round(clock.now * 1000)
        with services(app).store.engine.connect() as conn:
            kept = conn.execute(text("SELECT tier, end_ms FROM blocks")).all()
        for code, name in enumerate(("raw", "1m", "1h")):
            horizon = now_ms - round(retention[name] * 1000)
            ends = sorted({end_ms for tier, end_ms in kept if tier == code})
            window = 86_400_000 if name == "1h" else 3_600_000
            all_ends = sorted({math.ceil(ts * 1000 / window) * window for ts, _, _ in rows})
            assert ends == [e for e in all_ends if e >= horizon], name
        # Queries see exactly the samples at or after each tier's horizon.
        raw = points(history(client, metric=GAUGE, start=START, end=end))
        raw_horizon = clock.now - retention["raw"]
        assert [round(t, 3) for t, _ in raw] == [
            round(ts, 3) for ts, _, _ in rows if ts >= raw_horizon
        ]
        hourly = history(
            client, metric=GAUGE, start=START, end=end + 3600, step=3600, aggregation="count"
        )
        counted = sum(v for _, v in points(hourly))
        hour_horizon = clock.now - retention["1h"]
        first_bucket_end = math.ceil(hour_horizon / 3600) * 3600  # first end >= horizon
        assert counted == sum(
            1 for ts, _, _ in rows if first_bucket_end - 3600 < ts <= hourly["end"]
        )
