"""Block codec: one series' columns over a window <-> one compact, checksummed bytes blob.

Stage: storage. Input: strictly increasing int64 millisecond timestamps and k >= 1 float64
columns of the same length (one series' samples, or its rollup buckets). Output: bytes that
decode back bit for bit (-0.0, subnormals, NaN payloads and Inf included).

Layout (varints are LEB128; signed values zigzagged):
    version, n, k, step, timestamp stream, k x (mode, [first bit pattern], stream), CRC-32

- Timestamps are stored minus i * step (step: the median interval, refined over the span), so
  a regular scrape costs only its jitter.
- Mode d in 0..6: the column is v == int / 10**d bit for bit (smallest d, checked on the decode
  path itself, so -0.0, NaN and Inf never pass) and the ints are stored. Otherwise mode 7 (XOR
  of consecutive bit patterns, the Gorilla idea) or 8 (bit patterns as integers, smaller for
  smooth or decimal-derived floats), whichever is shorter.
- An integer stream is differenced 0, 1 or 2 times (the order whose radix packing is shortest)
  and shifted by its minimum, then packed by mixed radix (digits base R = max + 1, as many per
  group as fit 56 bits: under one bit lost per group, one unaligned 8-byte read to decode) or
  as deflated little-endian byte planes (wins on runs and outliers), whichever is shorter.

Measured on the tests' realistic streams (360 samples at 10 s with +-50 ms jitter, 5 seeds),
bytes per sample with timestamps, headers and checksum, [Shannon bound of the generator]:
    GPU util 1.26 [1.18], temperature 1.11 [0.98], power 3 dp 2.76 [2.55], energy mJ 3.04
    [2.75], CPU seconds 2 dp 2.07 [1.92], constant memory 0.92 [0.83], NVLink bytes 4.00
    [3.86]; mean 2.17 [2.01].
The jitter alone is log2(101) bits = 0.83 bytes in every single-series block, so no codec gets
these streams under 2.0; as seven columns of one block they cost 1.40 bytes per value. The
suggested design (delta-of-delta, zigzag, byte planes, one zlib call) measured 2.83: at 360
samples deflate's code tables and whole-bit codes cost more than mixed radix; its level (6 or
9) made no difference. Encoding a 360-sample block takes ~260 us and decoding ~70 us (~95 us
with cold caches) on a shared 2-vCPU machine where a 360-element numpy add takes 0.65 us.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FORMAT_VERSION = 1
_MAX_SAMPLES = 1 << 16  # a block is a window: longer histories are more blocks
_MAX_COLUMNS = 64
_MAX_DECIMALS = 6
_XOR, _BITS = 7, 8  # the column modes after the decimal ones
_RADIX, _DEFLATE = 0, 1  # the stream packers
_M64 = (1 << 64) - 1
_LE64 = np.dtype("<u8")

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class BlockError(ValueError):
    """The blob is not a valid block (truncated, corrupt, unknown version)."""


def encode(ts_ms: I64, columns: Sequence[F64]) -> bytes:
    """Encode timestamps (ms) and float columns of the same length into one block.

    Raises ValueError for mismatched lengths, non-increasing timestamps, or empty input.
    """
    ts, cols = _checked(ts_ms, columns)
    step = _grid_step(ts)
    out = bytes([FORMAT_VERSION]) + _varint(len(ts)) + _varint(len(cols)) + _varint(step)
    out += _stream(ts.view(np.uint64) - np.arange(len(ts), dtype=np.uint64) * np.uint64(step))
    out += b"".join(_column(col) for col in cols)
    return out + zlib.crc32(out).to_bytes(4, "little")


def decode(blob: bytes) -> tuple[I64, list[F64]]:
    """Inverse of encode: (int64 timestamps, float64 columns), bit-exact. Raises BlockError."""
    data = bytes(blob)
    if len(data) < 5:
        raise BlockError(f"block too short ({len(data)} bytes)")
    if data[0] != FORMAT_VERSION:
        raise BlockError(f"unknown block format version {data[0]}")
    if zlib.crc32(data[:-4]) != int.from_bytes(data[-4:], "little"):
        raise BlockError("block checksum mismatch")
    rd = _Reader(data[:-4])
    n, k = rd.varint(), rd.varint()
    if not (1 <= n <= _MAX_SAMPLES and 1 <= k <= _MAX_COLUMNS):
        raise BlockError(f"block shape out of range (n={n}, k={k})")
    grid = np.arange(n, dtype=np.uint64) * np.uint64(rd.varint())
    ts = (_read_stream(rd, n) + grid).view(np.int64)
    if not (ts[1:] > ts[:-1]).all():
        raise BlockError("decoded timestamps are not strictly increasing")
    cols = [_read_column(rd, n) for _ in range(k)]
    if rd.pos != len(rd.data):
        raise BlockError(f"{len(rd.data) - rd.pos} trailing bytes in block")
    return ts, cols


def _checked(ts_ms: I64, columns: Sequence[F64]) -> tuple[I64, list[F64]]:
    """Contiguous int64 timestamps and float64 columns, or ValueError saying what is wrong."""
    ts = np.asarray(ts_ms)
    if ts.ndim != 1 or not np.can_cast(ts.dtype, np.int64):
        raise ValueError(f"timestamps must be a 1-D int64 array, got {ts.dtype} {ts.shape}")
    if not 1 <= len(ts) <= _MAX_SAMPLES:
        raise ValueError(f"a block holds 1..{_MAX_SAMPLES} samples, got {len(ts)}")
    if not 1 <= len(columns) <= _MAX_COLUMNS:
        raise ValueError(f"a block holds 1..{_MAX_COLUMNS} columns, got {len(columns)}")
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    if not (ts[1:] > ts[:-1]).all():
        raise ValueError("timestamps must be strictly increasing")
    cols = [np.ascontiguousarray(c, dtype=np.float64) for c in columns]
    for i, col in enumerate(cols):
        if col.shape != ts.shape:
            raise ValueError(f"column {i} has shape {col.shape}, timestamps {ts.shape}")
    return ts, cols


def _grid_step(ts: I64) -> int:
    """The regular interval: the median one, refined over the span so gaps do not skew it."""
    if len(ts) == 1:
        return 0
    gaps = ts[1:].view(np.uint64) - ts[:-1].view(np.uint64)
    median = int(np.partition(gaps, len(gaps) // 2)[len(gaps) // 2])
    span = int(ts[-1]) - int(ts[0])
    intervals = max(1, (span + median // 2) // median)
    return (span + intervals // 2) // intervals


def _column(v: F64) -> bytes:
    bits = v.view(np.uint64)
    magnitude = float(np.abs(v).max()) if np.isfinite(v).all() else math.inf
    for d in range(_MAX_DECIMALS + 1):
        scale = 10.0**d
        if not magnitude * scale < 2.0**53:  # the ints must convert to float exactly
            break
        ints = np.rint(v * scale).astype(np.int64)
        if np.array_equal((ints / scale).view(np.uint64), bits):
            return bytes([d]) + _stream(ints.view(np.uint64))
    xor = bits ^ np.concatenate(([bits[0]], bits[:-1]))
    first = int(bits[0]).to_bytes(8, "little")
    return min(bytes([_XOR]) + first + _stream(xor), bytes([_BITS]) + _stream(bits), key=len)


def _read_column(rd: _Reader, n: int) -> F64:
    mode = rd.byte()
    if mode <= _MAX_DECIMALS:
        return _read_stream(rd, n).view(np.int64) / 10.0**mode
    if mode == _XOR:
        first = int.from_bytes(rd.take(8), "little")
        xor = _read_stream(rd, n)
        xor[0] ^= np.uint64(first)
        return np.bitwise_xor.accumulate(xor).view(np.float64)
    if mode == _BITS:
        return _read_stream(rd, n).view(np.float64)
    raise BlockError(f"unknown column mode {mode}")


def _stream(x: U64) -> bytes:
    """Tag, seeds, minimum and packed payload of an integer sequence (mod 2**64)."""
    best: tuple[int, int, bytes, U64] | None = None
    y, seeds = x, b""
    for order in range(min(3, len(x))):
        if order:
            seeds, y = seeds + _varint(_zz(int(y[0]))), y[1:] - y[:-1]
        low = int(y.view(np.int64).min())
        u = y - np.uint64(low & _M64)
        size = _radix_layout(int(u.max()) + 1, len(u))[3]
        if best is None or size < best[0]:
            best = (size, order, seeds + _varint(_zz(low)), u)
    assert best is not None  # x is never empty
    _, order, head, u = best
    radix, deflated = _radix_pack(u), _deflate_pack(u)
    if deflated and len(deflated) < len(radix):
        return bytes([order | _DEFLATE << 2]) + head + deflated
    return bytes([order | _RADIX << 2]) + head + radix


def _read_stream(rd: _Reader, n: int) -> U64:
    tag = rd.byte()
    order, packer = tag & 3, tag >> 2
    if order > 2 or order >= n or packer > _DEFLATE:
        raise BlockError(f"bad stream tag {tag} for {n} samples")
    seeds = [_unzz(rd.varint()) for _ in range(order)]
    low = np.uint64(_unzz(rd.varint()))
    u = (_radix_unpack if packer == _RADIX else _deflate_unpack)(rd, n - order)
    if not order:
        return u + low
    x = np.empty(n, dtype=np.uint64)
    x[:order] = seeds
    np.add(u, low, out=x[order:])
    for start in range(order - 1, -1, -1):
        x[start:].cumsum(out=x[start:])
    return x


@functools.lru_cache(maxsize=256)
def _radix_layout(radix: int, count: int) -> tuple[int, int, int, int]:
    """(digits per group, bits per full group, groups, total bits) for count digits < radix.

    A group holds as many digits as fit 56 bits, so it loses under one bit to rounding and lies
    within one 8-byte read at any bit offset; a digit of more than 56 bits takes 64.
    """
    if radix == 1:
        return 1, 0, count, 0
    per = max(1, int(56 / math.log2(radix)))
    while per > 1 and radix**per > 1 << 56:
        per -= 1
    while radix ** (per + 1) <= 1 << 56:
        per += 1
    groups = -(-count // per)
    full = (radix**per - 1).bit_length()
    full = 64 if full > 56 else full
    last = (radix ** (count - (groups - 1) * per) - 1).bit_length()
    return per, full, groups, (groups - 1) * full + last


def _radix_pack(u: U64) -> bytes:
    radix = int(u.max()) + 1
    per, full, groups, nbits = _radix_layout(radix, len(u))
    if radix == 1:
        return _varint(0)
    digits = np.zeros((groups, per), dtype=np.uint64)
    digits.ravel()[: len(u)] = u
    if per > 1:
        digits = (digits * _powers(radix, per)).sum(axis=1, dtype=np.uint64, keepdims=True)
    bits = np.unpackbits(digits.astype(_LE64).view(np.uint8), axis=1, bitorder="little")
    packed = np.packbits(bits[:, :full].ravel()[:nbits], bitorder="little")
    return _varint(radix - 1) + packed.tobytes()


def _radix_unpack(rd: _Reader, count: int) -> U64:
    radix = rd.varint() + 1
    if radix == 1:
        return np.zeros(count, dtype=np.uint64)
    per, full, groups, nbits = _radix_layout(radix, count)
    data = rd.take(-(-nbits // 8)) + bytes(8)
    # Every 8-byte window of the payload, one per byte offset: each group is one gather away.
    windows: U64 = np.ndarray((len(data) - 7,), dtype=_LE64, buffer=data, strides=(1,))
    offsets, shifts = _group_reads(full, groups)
    acc: U64 = windows[offsets] >> shifts
    if full < 64:
        acc &= np.uint64((1 << full) - 1)
    if per > 1:
        acc = acc[:, None] // _powers(radix, per) % np.uint64(radix)
    return acc.ravel()[:count]


@functools.lru_cache(maxsize=64)
def _group_reads(full: int, groups: int) -> tuple[npt.NDArray[np.intp], U64]:
    """Byte offset and bit shift of each group's 8-byte read (cached, never written to)."""
    starts = np.arange(0, groups * full, full, dtype=np.uint64)
    return (starts >> np.uint64(3)).astype(np.intp), starts & np.uint64(7)


@functools.lru_cache(maxsize=256)
def _powers(radix: int, per: int) -> U64:
    return np.uint64(radix) ** np.arange(per, dtype=np.uint64)


def _deflate_pack(u: U64) -> bytes:
    width = (int(u.max()).bit_length() + 7) // 8
    if width == 0:
        return b""
    planes = u.astype(_LE64).view(np.uint8).reshape(-1, 8)[:, :width].T.tobytes()
    payload = zlib.compress(planes, 9, wbits=-15)  # raw deflate: no header or second checksum
    return bytes([width]) + _varint(len(payload)) + payload


def _deflate_unpack(rd: _Reader, count: int) -> U64:
    width = rd.byte()
    if not 1 <= width <= 8:
        raise BlockError(f"bad byte-plane width {width}")
    inflater = zlib.decompressobj(wbits=-15)
    try:
        planes = inflater.decompress(rd.take(rd.varint()), width * count)
    except zlib.error as exc:
        raise BlockError(f"corrupt deflate payload: {exc}") from exc
    if len(planes) != width * count or not inflater.eof or inflater.unused_data:
        raise BlockError("deflate payload does not match its stream")
    out = np.zeros((count, 8), dtype=np.uint8)
    out[:, :width] = np.frombuffer(planes, dtype=np.uint8).reshape(width, count).T
    return out.view(_LE64).astype(np.uint64, copy=False).ravel()


class _Reader:
    """Bounds-checked cursor over a block body (past its version byte)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 1

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise BlockError("truncated block")
        self.pos += size
        return self.data[self.pos - size : self.pos]

    def byte(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        data, pos, value, shift = self.data, self.pos, 0, 0
        while True:
            if pos >= len(data) or shift > 63:
                raise BlockError("truncated block or overlong varint")
            value |= (data[pos] & 0x7F) << shift
            pos, shift = pos + 1, shift + 7
            if data[pos - 1] < 0x80:
                break
        if value > _M64:
            raise BlockError("varint out of range")
        self.pos = pos
        return value


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zz(value: int) -> int:
    """A 64-bit pattern zigzagged, so that small magnitudes of either sign get short varints."""
    value &= _M64
    return ((value << 1) ^ -(value >> 63)) & _M64


def _unzz(value: int) -> int:
    return ((value >> 1) ^ -(value & 1)) & _M64
