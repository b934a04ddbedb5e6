"""Block codec: bit-exact round trips for any input, BlockError (and nothing else) for any bad
blob, ValueError for bad input, and the compactness that makes per-series blocks worth storing."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.storage.blocks import FORMAT_VERSION, BlockError, decode, encode

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Rng = np.random.Generator
T0 = 1_800_000_000_000
I64 = np.iinfo(np.int64)
NAN_PAYLOADS = np.array(
    [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FF80000DEADBEEF],
    dtype=np.uint64,
).view(np.float64)
SPECIALS = [0.0, -0.0, 5e-324, -2.2250738585072014e-308, 1.7976931348623157e308, 2.0**53 + 2]
SPECIALS += [np.inf, -np.inf, *NAN_PAYLOADS.tolist()]


def assert_round_trip(ts: IntArray, cols: list[FloatArray]) -> bytes:
    blob = encode(ts, cols)
    got_ts, got_cols = decode(blob)
    assert got_ts.dtype == np.int64 and np.array_equal(got_ts, ts)
    assert len(got_cols) == len(cols)
    for got, want in zip(got_cols, cols, strict=True):
        assert got.dtype == np.float64
        assert np.array_equal(got.view(np.int64), want.view(np.int64))
    return blob


def decoded_or_rejected(blob: bytes) -> bool:
    """Decode, letting only BlockError through; a blob that decodes must decode sanely."""
    try:
        ts, cols = decode(blob)
    except BlockError:
        return False
    assert ts.dtype == np.int64 and bool(np.all(ts[1:] > ts[:-1]))
    assert cols and all(c.dtype == np.float64 and c.shape == ts.shape for c in cols)
    return True


def with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


# Hypothesis picks sizes, shapes and special values; a seeded generator fills the bulk.


def floats(values: npt.ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


COLUMN_KINDS: dict[str, Callable[[Rng, int], FloatArray]] = {
    "integers": lambda rng, n: floats(rng.integers(-1000, 1000, n)),
    "integer walk": lambda rng, n: floats(np.cumsum(rng.integers(-3, 4, n))),
    "decimals 1": lambda rng, n: floats(np.round(rng.normal(50, 20, n), 1)),
    "decimals 2": lambda rng, n: floats(np.round(np.cumsum(rng.exponential(15, n)), 2)),
    "decimals 3": lambda rng, n: floats(np.round(300 + rng.normal(0, 3, n), 3)),
    "floats": lambda rng, n: floats(rng.normal(0, 1, n) * 10.0 ** rng.integers(-300, 300, n)),
    "bit patterns": lambda rng, n: rng.integers(0, 2**64, n, dtype=np.uint64).view(np.float64),
    "subnormals": lambda rng, n: floats(rng.integers(-(2**52), 2**52, n) * 5e-324),
    "huge": lambda rng, n: floats(rng.choice([-1.0, 1.0], n) * rng.uniform(1e300, 1.7e308, n)),
    "big integers": lambda rng, n: floats(2.0**60 + rng.integers(0, 2**40, n) * 1024.0),
}


@st.composite
def timestamps(draw: st.DrawFn, rng: Rng) -> IntArray:
    n = draw(st.one_of(st.integers(1, 5), st.integers(1, 2000)))
    if draw(st.booleans()):  # a regular grid with jitter and sometimes gaps
        step = draw(st.sampled_from([1, 1000, 10_000, 60_000]))
        jitter = draw(st.sampled_from([0, 1, 50, step // 2]))
        slots = np.arange(n * 2, dtype=np.int64)
        slots = np.sort(rng.choice(slots, n, replace=False)) if draw(st.booleans()) else slots[:n]
        ts = draw(st.integers(-(2**50), 2**50)) + slots * step
        if jitter and step > 1:
            ts += rng.integers(-min(jitter, (step - 1) // 2), min(jitter, (step - 1) // 2) + 1, n)
        return ts
    lo = draw(st.sampled_from([I64.min, -(2**40), 0]))
    return np.unique(rng.integers(lo, I64.max, n, endpoint=True, dtype=np.int64))


@st.composite
def blocks(draw: st.DrawFn) -> tuple[IntArray, list[FloatArray]]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ts = draw(timestamps(rng))
    n = len(ts)
    cols = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(sorted(COLUMN_KINDS)))
        col = COLUMN_KINDS[kind](rng, n) if draw(st.booleans()) else np.full(n, rng.normal())
        specials = st.sampled_from(SPECIALS) | st.floats(allow_nan=True, allow_subnormal=True)
        for _ in range(draw(st.sampled_from([0, 0, 1, 3]))):
            col[draw(st.integers(0, n - 1))] = draw(specials)
        cols.append(col)
    return ts, cols


@settings(max_examples=200, deadline=None)
@given(blocks())
def test_any_block_round_trips_bit_for_bit(block: tuple[IntArray, list[FloatArray]]) -> None:
    assert_round_trip(*block)


def test_signed_zero_nan_payloads_and_infinities_keep_their_bits() -> None:
    ts = np.array([0, 1, 2, 3], dtype=np.int64)
    assert_round_trip(ts, [np.array([0.0, -0.0, 1.0, 2.0]), np.array([1.5, -0.0, 0.0, -0.0])])
    assert_round_trip(ts, [NAN_PAYLOADS, np.array([np.inf, -np.inf, 1.0, 1.0])])


def test_timestamps_may_span_the_whole_int64_range() -> None:
    ts = np.array([I64.min, -1, 0, I64.max], dtype=np.int64)
    assert_round_trip(ts, [np.zeros(4)])
    assert_round_trip(ts[:1], [np.array([-0.0])])


# Bad blobs: BlockError, never another exception.


@given(st.binary(max_size=300))
def test_random_bytes_are_rejected_with_block_error(blob: bytes) -> None:
    assert not decoded_or_rejected(blob)  # the checksum fails (odds of passing: 2**-32)


@given(st.binary(max_size=300))
def test_random_bodies_with_a_valid_checksum_never_raise_anything_but_block_error(
    body: bytes,
) -> None:
    decoded_or_rejected(with_crc(bytes([FORMAT_VERSION]) + body))


@settings(max_examples=50, deadline=None)
@given(blocks(), st.data())
def test_truncated_and_mutated_blobs_are_rejected(
    block: tuple[IntArray, list[FloatArray]], data: st.DataObject
) -> None:
    blob = encode(*block)
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(BlockError):
        decode(blob[:cut])
    with pytest.raises(BlockError):  # a consistent checksum does not hide missing bytes
        decode(with_crc(blob[: max(1, cut - 4)]))
    at, bit = data.draw(st.integers(0, len(blob) - 1)), data.draw(st.integers(0, 7))
    flipped = bytearray(blob)
    flipped[at] ^= 1 << bit
    with pytest.raises(BlockError):  # CRC-32 catches every single-bit error
        decode(bytes(flipped))
    flipped[at] = data.draw(st.integers(0, 255))
    decoded_or_rejected(with_crc(bytes(flipped[:-4])))


def test_every_prefix_of_a_block_is_rejected() -> None:
    ts = T0 + np.arange(40, dtype=np.int64) * 10_000
    blob = encode(ts, [np.arange(40.0), np.round(np.linspace(0, 1, 40) ** 2, 6)])
    for cut in range(len(blob)):
        with pytest.raises(BlockError):
            decode(blob[:cut])
        if cut > 4:
            with pytest.raises(BlockError):
                decode(with_crc(blob[: cut - 4]))


def test_unknown_versions_are_rejected() -> None:
    blob = encode(np.array([T0], dtype=np.int64), [np.array([1.0])])
    for version in set(range(256)) - {FORMAT_VERSION}:
        with pytest.raises(BlockError, match="version"):
            decode(with_crc(bytes([version]) + blob[1:-4]))


# Bad input to encode: ValueError.

ONE_TS = np.array([T0], dtype=np.int64)
TWO_TS = np.array([T0, T0 + 10_000], dtype=np.int64)


@pytest.mark.parametrize(
    ("ts", "cols", "message"),
    [
        (TWO_TS, [np.array([1.0])], "shape"),
        (TWO_TS, [np.zeros(2), np.zeros(3)], "shape"),
        (np.array([T0, T0], dtype=np.int64), [np.zeros(2)], "increasing"),
        (np.array([T0, T0 - 1], dtype=np.int64), [np.zeros(2)], "increasing"),
        (np.array([I64.max, I64.min], dtype=np.int64), [np.zeros(2)], "increasing"),
        (ONE_TS, [], "columns"),
        (np.array([], dtype=np.int64), [np.array([])], "samples"),
        (np.array([1.5, 2.5]), [np.zeros(2)], "int64"),
        (np.zeros((2, 2), dtype=np.int64), [np.zeros((2, 2))], "1-D"),
    ],
)
def test_invalid_input_is_a_value_error(ts: IntArray, cols: list[FloatArray], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        encode(ts, cols)
    assert not isinstance(caught.value, BlockError)


# Compactness on realistic monitoring streams: 1 hour at 10 s with +-50 ms scrape jitter.


def realistic_streams(seed: int) -> tuple[IntArray, dict[str, FloatArray]]:
    """One GPU's and one node's series for an hour, shaped like what NVML and /proc report."""
    rng = np.random.default_rng(seed)
    n = 360
    ts = T0 + np.arange(n, dtype=np.int64) * 10_000 + rng.integers(-50, 51, n)
    dt_ms = np.diff(ts, prepend=ts[0] - 10_000)
    level_watts = 300 + np.cumsum(rng.normal(0, 0.5, n))  # the board's power, drifting
    walk = np.cumsum(rng.choice([-1, 0, 1], n, p=[0.15, 0.7, 0.15]))
    return ts, {
        "gpu utilisation %": floats(np.clip(60 + np.cumsum(rng.integers(-3, 4, n)), 0, 100)),
        "temperature C": floats(np.clip(55 + walk, 30, 90)),
        "power W": floats(np.round(level_watts + rng.normal(0, 3, n), 3)),  # instantaneous
        "energy mJ": floats(123_456_789_012 + np.cumsum(np.round(level_watts * dt_ms))),  # integral
        "cpu seconds": floats(
            np.round(98_765.43 + np.cumsum(np.round(rng.normal(15, 1, n), 2)), 2)
        ),
        "memory bytes": np.full(n, 80.0 * 2**30),
        "nvlink bytes": floats(
            9_876_543_210_000 + np.cumsum(rng.integers(40_000_000, 60_000_000, n))
        ),
    }


# Shannon bound per sample of each generator's innovations, in bytes; the +-50 ms jitter alone
# costs log2(101) bits in every single-series block. With it the mean bound is 2.01 bytes per
# sample, so the mean is held to 2.2 (measured 2.17) and each stream to 1.15x its bound.
JITTER_BOUND = math.log2(101) / 8
VALUE_BOUNDS = {
    "gpu utilisation %": math.log2(7) / 8,  # steps uniform in -3..3
    "temperature C": (2 * 0.15 * math.log2(1 / 0.15) + 0.7 * math.log2(1 / 0.7)) / 8,
    # The level's N(0, 0.5) walk seen through N(0, 3) reading noise: the steady-state Kalman
    # innovation variance is 10.63 W**2, read in mW.
    "power W": math.log2(1000 * math.sqrt(10.63 * 2 * math.pi * math.e)) / 8,
    "energy mJ": 1.914,  # N(0, 5000) level change + 300 W x U(-50, 50) ms jitter, numerically
    "cpu seconds": math.log2(100 * math.sqrt(2 * math.pi * math.e)) / 8,  # N(15, 1) s, in 0.01 s
    "memory bytes": 0.0,
    "nvlink bytes": math.log2(20e6) / 8,  # increments uniform over 20 MB
}


def test_realistic_streams_cost_close_to_their_entropy() -> None:
    per_stream: dict[str, list[float]] = {}
    for seed in range(5):
        ts, streams = realistic_streams(seed)
        for name, values in streams.items():
            blob = assert_round_trip(ts, [values])
            per_stream.setdefault(name, []).append(len(blob) / len(ts))
    for name, sizes in per_stream.items():
        assert np.mean(sizes) <= 1.15 * (JITTER_BOUND + VALUE_BOUNDS[name]), name
    assert np.mean([np.mean(sizes) for sizes in per_stream.values()]) <= 2.2


def test_a_perfectly_regular_constant_series_costs_almost_nothing() -> None:
    ts = T0 + np.arange(360, dtype=np.int64) * 10_000
    assert len(assert_round_trip(ts, [np.full(360, 42.5)])) <= 32


def test_rollup_buckets_with_seven_columns_round_trip() -> None:
    rng = np.random.default_rng(7)
    raw = np.round(300 + np.cumsum(rng.normal(0, 0.5, 360)) + rng.normal(0, 3, 360), 3)
    minutes = raw.reshape(60, 6)
    counter = np.cumsum(np.round(minutes * 10_000)).reshape(60, 6)
    columns = [
        np.full(60, 6.0),  # count
        minutes.sum(axis=1),  # sum: not a 3-decimal number any more
        minutes.min(axis=1),
        minutes.max(axis=1),
        minutes[:, 0],  # first
        minutes[:, -1],  # last
        counter[:, -1] - np.concatenate(([0.0], counter[:-1, -1])),  # increase
    ]
    ts = T0 + np.arange(60, dtype=np.int64) * 60_000
    blob = assert_round_trip(ts, columns)
    assert len(blob) < 60 * 8 * 8 / 2  # under half of the raw 64-bit timestamps and columns
