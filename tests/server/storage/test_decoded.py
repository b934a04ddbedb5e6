"""The decoded-block cache: same answers as the codec, bounded, keyed by the bytes."""

from __future__ import annotations

import numpy as np
import pytest

from server.storage import blocks
from server.storage.decoded import DecodedBlocks


def _block(seed: int, n: int = 100) -> bytes:
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.integers(9_950, 10_050, n)).astype(np.int64)
    return blocks.encode(ts, [rng.standard_normal(n)])


def test_answers_as_the_codec_and_hits_on_the_same_bytes():
    cache = DecodedBlocks()
    blob = _block(1)
    first = cache.decode(blob)
    again = cache.decode(bytes(bytearray(blob)))  # equal bytes, another object
    expected = blocks.decode(blob)
    assert np.array_equal(first[0], expected[0])
    assert first[1][0].view(np.uint64).tolist() == expected[1][0].view(np.uint64).tolist()
    assert again[0] is first[0]
    assert (cache.hits, cache.misses) == (1, 1)


def test_other_bytes_miss_and_arrays_are_read_only():
    cache = DecodedBlocks()
    stamps, columns = cache.decode(_block(1))
    other = cache.decode(_block(2))
    assert other[0] is not stamps and cache.misses == 2
    with pytest.raises(ValueError):
        columns[0][0] = 1.0


def test_bounded_by_samples_least_recently_used_first():
    cache = DecodedBlocks(max_samples=250)
    a, b, c = _block(1), _block(2), _block(3)
    cache.decode(a)
    cache.decode(b)
    cache.decode(a)  # a is now the most recent
    cache.decode(c)  # 300 samples > 250: b goes
    assert cache.samples == 200
    cache.decode(a)
    assert cache.hits == 2
    cache.decode(b)
    assert cache.misses == 4


def test_a_block_larger_than_the_bound_is_not_kept():
    cache = DecodedBlocks(max_samples=50)
    cache.decode(_block(1))
    assert cache.samples == 0
