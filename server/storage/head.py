"""The head payload: one batch's samples as two little-endian columns.

A head row holds ``n`` series ids (uint32, ascending) then their ``n`` values (float64): 12 bytes
per sample, written without compression because the head is short-lived (one window) and the
ingest path must stay cheap. Ascending ids let a reader find one series with a binary search.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

IDS = np.dtype("<u4")
VALUES = np.dtype("<f8")


class HeadError(ValueError):
    """A head payload does not have the size its sample count says."""


def pack(ids: Sequence[int], values: Sequence[float]) -> tuple[int, bytes]:
    """Returns: (n, payload) for parallel ids and values, sorted by id."""
    id_array = np.asarray(ids, dtype=IDS)
    value_array = np.asarray(values, dtype=VALUES)
    order = np.argsort(id_array, kind="stable")
    return len(id_array), id_array[order].tobytes() + value_array[order].tobytes()


def unpack(n: int, payload: bytes) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.float64]]:
    """Returns: (ids, values) views of a payload. Raises HeadError on a size mismatch."""
    if len(payload) != n * (IDS.itemsize + VALUES.itemsize):
        raise HeadError(f"head payload of {len(payload)} bytes does not hold {n} samples")
    split = n * IDS.itemsize
    ids = np.frombuffer(payload, dtype=IDS, count=n)
    values = np.frombuffer(payload, dtype=VALUES, count=n, offset=split)
    return ids, values


def merge(first: tuple[int, bytes], second: tuple[int, bytes]) -> tuple[int, bytes]:
    """Returns: the union of two payloads of one timestamp; on a shared id the first one wins."""
    ids_a, values_a = unpack(*first)
    ids_b, values_b = unpack(*second)
    keep = ~np.isin(ids_b, ids_a)
    ids = np.concatenate([ids_a, ids_b[keep]])
    values = np.concatenate([values_a, values_b[keep]])
    order = np.argsort(ids, kind="stable")
    return len(ids), ids[order].tobytes() + values[order].tobytes()
