"""The instant selector's one-search path equals a plain per-series reading of the samples."""

from __future__ import annotations

import numpy as np
import pytest

from server.promql import engine
from server.promql.engine import Engine
from server.promql.seam import MemorySeries
from server.promql.values import stale_nan

LOOKBACK_MS = 300_000


def _expected(ts: np.ndarray, values: np.ndarray, t: int) -> float | None:
    """The newest sample at or before t, within the lookback, unless it is a stale marker."""
    before = np.flatnonzero(ts <= t)
    if not len(before) or ts[before[-1]] <= t - LOOKBACK_MS:
        return None
    value = values[before[-1]]
    return None if value.view(np.uint64) == np.float64(stale_nan()).view(np.uint64) else value


@pytest.mark.parametrize("chunk_cells", [1, 300, 1 << 20])  # 1, 4, all series a search
def test_every_series_and_step_matches_a_direct_reading(
    monkeypatch: pytest.MonkeyPatch, chunk_cells: int
) -> None:
    monkeypatch.setattr(engine, "_LATEST_CHUNK_CELLS", chunk_cells)
    rng = np.random.default_rng(7)
    source = MemorySeries()
    data = {}
    for i in range(12):
        ts = np.unique(rng.integers(0, 3_600_000, size=int(rng.integers(1, 40))))
        values = rng.normal(size=len(ts))
        values[rng.random(len(ts)) < 0.1] = stale_nan()
        source.add({"__name__": "m", "i": str(i)}, ts, values)
        data[str(i)] = (ts, values)
    result = Engine(source).range("m", 0, 4_000_000, 61_000)
    got = {dict(labels)["i"]: dict(zip(t.tolist(), v.tolist(), strict=True))
           for labels, t, v in result.points()}  # fmt: skip
    for name, (ts, values) in data.items():
        for t in range(0, 4_000_001, 61_000):
            want = _expected(ts, values, t)
            assert got.get(name, {}).get(t) == want, (name, t)
