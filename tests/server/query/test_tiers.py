"""PromQL past the raw retention, on SQLite and PostgreSQL: a server with a fake clock and small
retentions (raw 3 h, 1m 12 h, 1h 3 d) holds 30 hours of a gauge and a counter every two
minutes, compacted, so the oldest 18 hours are left only in the 1-hour tier, the next 9 in the
1-minute tier and the last 3 as raw samples. The expected documented samples are worked out
here from the rows sent; queries through the API must agree with the engine over those, and
with the truth where the rollups answer exactly."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.app import run_maintenance
from server.promql.engine import Engine
from server.promql.plan import Matcher, MatchOp
from server.promql.seam import MemorySeries
from server.promql.values import NAME
from server.query import tiers
from server.query.source import Deadline, StorageSource
from tests.server.conftest import START, FakeClock
from tests.server.query.conftest import API
from tests.server.storage.helpers import COUNTER, GAUGE, push_stream, server, services

INTERVAL = 120.0
TICKS = 900  # 30 hours
MINUTE_MS, HOUR_MS = 60_000, 3_600_000
RETENTION = {
    "raw_retention_seconds": 3 * 3600.0,
    "rollup_1m_retention_seconds": 12 * 3600.0,
    "rollup_1h_retention_seconds": 3 * 86400.0,
}


@dataclass(frozen=True)
class History:
    app: FastAPI
    client: TestClient
    ts_ms: np.ndarray  # the rows sent
    gauge: np.ndarray
    counter: np.ndarray
    cuts: tiers.Cuts
    now_ms: int
    edge_ms: int  # a row just after the raw horizon, at or before the rollups' cut


def _rows() -> list[tuple[float, float, float]]:
    """(timestamp s, gauge, counter); the counter restarts in the 1h part and in the 1m part."""
    rng = random.Random(12)
    gauge, counter, rows = 50.0, 1e9, []
    for tick in range(TICKS):
        gauge = min(95.0, max(20.0, gauge + rng.uniform(-1.0, 1.0)))
        counter += rng.randint(0, 400_000)
        if tick in (100, 600):
            counter = float(rng.randint(0, 1000))
        rows.append((round(START + tick * INTERVAL + rng.uniform(-0.05, 0.05), 3), gauge, counter))
    return rows


@contextmanager
def _history(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[History]:
    rows = _rows()
    with server(
        tmp_path,
        database_url,
        clock,
        storage_block_seconds=3600,
        compaction_grace_seconds=0,
        **RETENTION,
    ) as (app, client):
        push_stream(app, rows, INTERVAL, clock)
        # The raw horizon falls 10 ms before a row a little before a minute's end, so that row
        # is both a raw sample and in the 1m bucket the rollup part ends with: read only once.
        edge = next(t for t, _, _ in rows[-90:] if round(t * 1000) % MINUTE_MS >= MINUTE_MS - 40)
        clock.now = edge - 0.01 + RETENTION["raw_retention_seconds"]
        run_maintenance(services(app))  # compaction, then retention of raw blocks
        cuts = tiers.reader_cuts(services(app).reader)
        ts = np.array([round(t * 1000) for t, _, _ in rows], dtype=np.int64)
        gauge = np.array([g for _, g, _ in rows])
        counter = np.array([c for _, _, c in rows])
        now_ms, edge_ms = round(clock.now * 1000), round(edge * 1000)
        yield History(app, client, ts, gauge, counter, cuts, now_ms, edge_ms)


def _true_increase(h: History, a_ms: int, b_ms: int) -> float:
    """The counter's reset-aware increase from its last row at or before a to the one at or
    before b."""
    inside = h.counter[(h.ts_ms > a_ms) & (h.ts_ms <= b_ms)]
    before = h.counter[h.ts_ms <= a_ms]
    values = np.concatenate([before[-1:], inside])
    deltas = np.diff(values)
    return float(np.where(deltas >= 0, deltas, values[1:]).sum())


def _documented_times(h: History) -> np.ndarray:
    """Bucket ends of the 1h part, then of the 1m part, then raw timestamps (rows in each)."""
    hour = np.unique(-(-h.ts_ms // HOUR_MS) * HOUR_MS)
    minute = np.unique(-(-h.ts_ms // MINUTE_MS) * MINUTE_MS)
    return np.concatenate(
        [
            hour[hour <= h.cuts.hour_until_ms],
            minute[(minute > h.cuts.minute_after_ms) & (minute <= h.cuts.raw_after_ms)],
            h.ts_ms[h.ts_ms > h.cuts.raw_after_ms],
        ]
    )


def _documented(h: History) -> MemorySeries:
    """The series the source should present, built from the rows: a gauge reads the last row at
    or before each time; the counter steps back from its true value at the cut by the true
    increases."""
    times = _documented_times(h)
    last = np.searchsorted(h.ts_ms, times, side="right") - 1
    anchor_at = int(np.flatnonzero(times <= h.cuts.raw_after_ms)[-1])
    counter = np.empty(len(times))
    counter[anchor_at:] = h.counter[last[anchor_at:]]
    for i in range(anchor_at - 1, -1, -1):
        counter[i] = counter[i + 1] - _true_increase(h, int(times[i]), int(times[i + 1]))
    memory = MemorySeries()
    labels = _labels(h)
    memory.add({**labels, NAME: GAUGE}, times, h.gauge[last])
    memory.add({**labels, NAME: COUNTER}, times, counter)
    return memory


def _labels(h: History) -> dict[str, str]:
    data = _ok(h.client.get(f"{API}/series", params={"match[]": GAUGE}))
    assert len(data) == 1
    return {k: v for k, v in data[0].items() if k != NAME}


def _source(h: History) -> StorageSource:
    deps = services(h.app)
    return StorageSource(deps.store, deps.reader, Deadline.after(60, "test"), 10**9)


def _ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


def _range(h: History, query: str, start_ms: int, end_ms: int, step_ms: int) -> dict:
    params = {
        "query": query,
        "start": start_ms / 1000,
        "end": end_ms / 1000,
        "step": step_ms / 1000,
    }
    result = _ok(h.client.get(f"{API}/query_range", params=params))["result"]
    return {
        tuple(sorted(row["metric"].items())): [
            (round(t * 1000), float(v)) for t, v in row["values"]
        ]
        for row in result
    }


def _engine(memory: MemorySeries, query: str, start_ms: int, end_ms: int, step_ms: int) -> dict:
    result = Engine(memory).range(query, start_ms, end_ms, step_ms)
    return {
        labels: list(zip(ts.tolist(), vs.tolist(), strict=True))
        for labels, ts, vs in result.points()
    }


def _assert_close(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for labels, points in want.items():
        assert [t for t, _ in got[labels]] == [t for t, _ in points], labels
        for (t, a), (_, b) in zip(got[labels], points, strict=True):
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6), (t, a, b)


def test_selectors_read_documented_samples_from_each_tier_without_duplicates(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    with _history(tmp_path, database_url, clock) as h:
        raw_horizon = h.now_ms - round(RETENTION["raw_retention_seconds"] * 1000)
        assert h.ts_ms[0] < h.cuts.hour_until_ms < h.cuts.raw_after_ms < h.ts_ms[-1]
        assert 0 <= h.cuts.raw_after_ms - raw_horizon < MINUTE_MS
        assert raw_horizon < h.edge_ms <= h.cuts.raw_after_ms
        source = _source(h)
        want = _documented(h)
        start, end = int(h.ts_ms[0]) - 1, h.now_ms
        for metric in (GAUGE, COUNTER):
            matchers = [Matcher(NAME, MatchOp.EQUAL, metric)]
            (got,) = source.select(matchers, start, end)
            (expected,) = want.select(matchers, start, end)
            assert np.all(np.diff(got.ts) > 0)  # no duplicate at any tier boundary
            assert got.ts.tolist() == expected.ts.tolist()
            assert np.allclose(got.values, expected.values, rtol=1e-12), metric
        # Samples past the raw horizon count against the limit like raw ones.
        assert source.samples_loaded == 2 * len(_documented_times(h))
        # Raw samples answer nothing past the raw horizon: only the rollups do.
        found = [f.series for f in source.find([Matcher(NAME, MatchOp.EQUAL, GAUGE)])]
        ((raw_ts, _),) = services(h.app).reader.raw(found, start, raw_horizon - 1).values()
        assert len(raw_ts) == 0
        (alone,) = source.select([Matcher(NAME, MatchOp.EQUAL, GAUGE)], start, raw_horizon - 1)
        assert len(alone.ts) and alone.ts[-1] <= h.cuts.raw_after_ms


def test_a_long_panel_answers_past_the_raw_retention(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    with _history(tmp_path, database_url, clock) as h:
        want = _documented(h)
        # Grafana aligns a panel's range to its step; this one starts a week before the data.
        start = (int(h.ts_ms[0]) // HOUR_MS - 7 * 24) * HOUR_MS
        end = int(h.ts_ms[-1])
        queries = [
            GAUGE,  # gauges read each bucket's last value
            f"rate({COUNTER}[2h])",
            f"increase({COUNTER}[3h])",
            f"{COUNTER} - {COUNTER} offset 1h",
            f"avg_over_time({GAUGE}[90m])",  # not a whole number of hours: from samples
        ]
        for query in queries:
            got = _range(h, query, start, end, HOUR_MS)
            _assert_close(got, _engine(want, query, start, end, HOUR_MS))
            (points,) = got.values()
            assert points[0][0] < h.cuts.hour_until_ms - 12 * HOUR_MS, query
            assert len(points) >= TICKS * INTERVAL / 3600 - 4, query
        # The rebuilt counter rises by the true increase, across both restarts and every cut.
        (points,) = _range(h, f"{COUNTER} - {COUNTER} offset 1h", start, end, HOUR_MS).values()
        assert len(points) >= 25
        for t, value in points:
            assert math.isclose(value, _true_increase(h, t - HOUR_MS, t), rel_tol=1e-9), t


def test_exact_range_functions_answer_from_the_rollups_with_the_true_values(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    with _history(tmp_path, database_url, clock) as h:
        start = (int(h.ts_ms[0]) // HOUR_MS) * HOUR_MS
        end = int(h.ts_ms[-1])
        for function, of in (
            ("max_over_time", np.max),
            ("min_over_time", np.min),
            ("count_over_time", len),
            ("sum_over_time", np.sum),
            ("last_over_time", lambda v: v[-1]),
        ):
            (points,) = _range(h, f"{function}({GAUGE}[1h])", start, end, HOUR_MS).values()
            assert len(points) == (end - start) // HOUR_MS
            for t, value in points:
                inside = h.gauge[(h.ts_ms > t - HOUR_MS) & (h.ts_ms <= t)]
                assert math.isclose(value, float(of(inside)), rel_tol=1e-9), (function, t)


def test_inside_the_raw_retention_exact_answers_equal_the_raw_ones_and_others_fall_back(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    with _history(tmp_path, database_url, clock) as h:
        want = _documented(h)  # raw samples here
        end = int(h.ts_ms[-1])
        first_hour = -(-(h.cuts.raw_after_ms + HOUR_MS) // HOUR_MS) * HOUR_MS
        assert first_hour <= end
        cases = (  # function, metric, range, start (or shift), step, whether exact from rollups
            ("max_over_time", GAUGE, 10 * MINUTE_MS, 0, MINUTE_MS, True),
            ("avg_over_time", GAUGE, 5 * MINUTE_MS, 0, 2 * MINUTE_MS, True),
            ("count_over_time", COUNTER, 30 * MINUTE_MS, 0, MINUTE_MS, True),
            ("max_over_time", GAUGE, HOUR_MS, first_hour, HOUR_MS, True),
            ("max_over_time", GAUGE, 10 * MINUTE_MS, 7_000, MINUTE_MS, False),  # off the ends
            ("max_over_time", GAUGE, 150_000, 0, MINUTE_MS, False),  # not whole buckets
        )
        for function, metric, range_ms, at, step, exact in cases:
            start = at if at > 10**9 else h.cuts.raw_after_ms + 30 * MINUTE_MS + at
            query = f"{function}({metric}[{range_ms}ms])"
            got = _range(h, query, start, end, step)
            assert got, query
            _assert_close(got, _engine(want, query, start, end, step))
            matchers = [Matcher(NAME, MatchOp.EQUAL, metric)]
            refs = np.arange(start, end + 1, step, dtype=np.int64)
            source = _source(h)
            answer = source.over_time(function, matchers, range_ms, refs)
            assert (answer is not None) is exact, query
            if exact:  # a bucket exists only where samples do, so never more to read
                buckets = source.samples_loaded
                source.select(matchers, int(refs[0]) - range_ms + 1, end)
                assert 0 < buckets <= source.samples_loaded - buckets, query
                if range_ms == HOUR_MS:
                    assert buckets * 10 < source.samples_loaded - buckets
