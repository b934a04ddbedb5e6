"""Joining a series' runs (blocks, then head rows) as ``merge_runs`` does, faster when ordered."""

from __future__ import annotations

import numpy as np

from server.storage.reader import _joined
from server.storage.runs import merge_runs


def _run(start: int, count: int, value: float) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(start, start + count, dtype=np.int64) * 10, np.full(count, value)


def _same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    return a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist()


def test_ordered_runs_are_concatenated():
    parts = [_run(0, 5, 1.0), _run(5, 5, 2.0), _run(10, 3, 3.0)]
    joined = _joined(parts)
    assert _same(joined, merge_runs(parts))
    assert joined[0].dtype == np.int64 and len(joined[0]) == 13


def test_overlapping_runs_keep_the_earlier_sample_as_merge_runs_does():
    parts = [_run(0, 5, 1.0), _run(3, 5, 2.0), _run(1, 2, 9.0)]
    joined = _joined(parts)
    assert _same(joined, merge_runs(parts))
    assert joined[1].tolist() == [1.0] * 5 + [2.0] * 3


def test_empty_runs_are_skipped():
    empty = (np.empty(0, np.int64), np.empty(0, np.float64))
    assert _same(_joined([empty, _run(0, 2, 1.0), empty]), _run(0, 2, 1.0))
    assert len(_joined([empty])[0]) == 0
    assert len(_joined([])[0]) == 0
