"""One spooled batch as a file: the header, its checks, and writing it durably.

A batch file is a 36-byte header, big-endian, then the payload (the gzip JSON batch)::

    magic b"DCSP" | version u16 | reserved u16 | payload length u32 | payload CRC-32 u32 |
    seq i64 | created wall time f64 (Unix seconds) | CRC-32 of the 32 header bytes before it

The header checksum catches a damaged seq or time; the length catches a truncated file; the
payload checksum catches damaged data.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

MAGIC = b"DCSP"
FORMAT_VERSION = 1
_HEADER_BODY = struct.Struct(">4sHHIIqd")
_HEADER = struct.Struct(">4sHHIIqdI")
HEADER_BYTES = _HEADER.size

WriteFile = Callable[[Path, bytes, bool], None]
"""Writes bytes to a new file, fsynced when asked; raises OSError. The fault-injection seam."""


class DamagedRecordError(Exception):
    """A batch file failed a check; the message says which."""


def encode_record(seq: int, payload: bytes, created_wall: float) -> bytes:
    """Returns: the file content for one batch (header then payload)."""
    body = _HEADER_BODY.pack(
        MAGIC, FORMAT_VERSION, 0, len(payload), zlib.crc32(payload), seq, created_wall
    )
    return body + struct.pack(">I", zlib.crc32(body)) + payload


def check_header(header: bytes, size: int, seq: int) -> tuple[int, float]:
    """Check a file's header against its size and the seq its name gives.

    Returns:
        (payload CRC-32, created wall time in Unix seconds).

    Raises:
        DamagedRecordError: truncated, wrong magic, version or checksum, or not the named seq.
    """
    if len(header) < HEADER_BYTES:
        raise DamagedRecordError(f"truncated: {size} bytes, shorter than a header")
    magic, version, _reserved, length, crc, stored_seq, created, header_crc = _HEADER.unpack(
        header[:HEADER_BYTES]
    )
    if magic != MAGIC:
        raise DamagedRecordError("not a spool file (bad magic)")
    if zlib.crc32(header[: _HEADER_BODY.size]) != header_crc:
        raise DamagedRecordError("header checksum mismatch")
    if version != FORMAT_VERSION:
        raise DamagedRecordError(f"unknown format version {version}")
    if stored_seq != seq:
        raise DamagedRecordError(f"holds seq {stored_seq}, not the seq of its name")
    if size != HEADER_BYTES + length:
        raise DamagedRecordError(f"{size} bytes, the header says {HEADER_BYTES + length}")
    return crc, created


def decode_record(data: bytes, seq: int) -> bytes:
    """Returns: the payload of a whole batch file, checked.

    Raises:
        DamagedRecordError: the header or the payload checksum does not match.
    """
    crc, _created = check_header(data[:HEADER_BYTES], len(data), seq)
    payload = data[HEADER_BYTES:]
    if zlib.crc32(payload) != crc:
        raise DamagedRecordError("payload checksum mismatch")
    return payload


def write_file(path: Path, data: bytes, fsync: bool) -> None:
    """Create ``path`` (mode 0600) holding ``data``; fsync it if ``fsync``.

    Raises:
        OSError: the file cannot be created, written or synced.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(directory: Path) -> None:
    """Make a rename or an unlink in ``directory`` durable.

    Raises:
        OSError: the directory cannot be opened or synced.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
