"""Small helpers shared by history reads and compaction: sample runs and bounded IN lists."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

Int64s = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Samples = tuple[Int64s, Floats]

IN_CHUNK = 500
"""Ids per ``IN (...)`` list, well under every backend's parameter limit."""

EMPTY: Samples = (np.empty(0, np.int64), np.empty(0, np.float64))


def in_chunks(items: Sequence[int], size: int = IN_CHUNK) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def merge_runs(parts: Sequence[Samples]) -> Samples:
    """Union of sample runs in time order; on a repeated timestamp the earlier run's sample wins
    (a stored sample is never replaced by a re-sent one)."""
    if not parts:
        return EMPTY
    if len(parts) == 1:
        return parts[0]
    stamps = np.concatenate([part[0] for part in parts])
    values = np.concatenate([part[1] for part in parts])
    unique, first = np.unique(stamps, return_index=True)
    return unique.astype(np.int64), values[first]
