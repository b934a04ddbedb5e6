"""sum and avg over dense finite input take a shorter path; it must match the general one.

The general loop is forced by one extra row that is absent at every step (it changes nothing
in the general loop's answer but rules the dense path out), so both paths see the same values.
"""

from __future__ import annotations

import numpy as np
import pytest

from server.promql.aggregations import _avg, _sum


def _values(seed: int, rows: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.integers(-8, 12, size=(rows, width))
    return rng.standard_normal((rows, width)) * scale + rng.integers(0, 3) * 1e15


@pytest.mark.parametrize("reduce", [_sum, _avg])
@pytest.mark.parametrize("width", [1, 7])
@pytest.mark.parametrize("seed", range(20))
def test_dense_path_is_bit_identical_to_the_general_loop(reduce, width, seed):
    values = _values(seed, 1 + seed * 3, width)
    present = np.ones(values.shape, dtype=bool)
    fast = reduce(values, present)
    general = reduce(
        np.vstack([values, np.full((1, width), 123.0)]),
        np.vstack([present, np.zeros((1, width), dtype=bool)]),
    )
    assert fast.view(np.uint64).tolist() == general.view(np.uint64).tolist()


def test_overflowing_sums_leave_the_dense_path():
    values = np.array([[1e308], [1e308], [-1e308]])
    present = np.ones(values.shape, dtype=bool)
    assert np.isinf(_sum(values, present)[0])
    assert _avg(values, present)[0] == pytest.approx(1e308 / 3)
