"""The disk spool: batches survive restarts and crashes, in order, within byte and age budgets;
damaged files are skipped and counted; a failing disk degrades to memory and recovers."""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.collectors.agent_self import AgentSelfCollector
from agent.config import load_settings
from agent.shipper import ShipperStats
from agent.spool import DiskSpool, SpooledBatch, open_spool, record
from agent.spool.files import CORRUPT_DIR, CORRUPT_KEPT, REJECTED_DIR, REJECTED_KEPT
from agent.spool.record import HEADER_BYTES, MAGIC, encode_record
from tests.catalog_check import catalog_problems

DAY = 86400.0
T0 = 1_800_000_000.0


class Clocks:
    """A wall clock and a monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.wall_now = T0
        self.mono_now = 1000.0

    def wall(self) -> float:
        return self.wall_now

    def mono(self) -> float:
        return self.mono_now

    def advance(self, seconds: float) -> None:
        self.wall_now += seconds
        self.mono_now += seconds


class FlakyDisk:
    """The write seam: writes for real, or fails with ``error`` while one is set."""

    def __init__(self) -> None:
        self.error: int | None = None
        self.calls = 0

    def __call__(self, path: Path, data: bytes, fsync: bool) -> None:
        self.calls += 1
        if self.error is not None:
            raise OSError(self.error, os.strerror(self.error))
        record.write_file(path, data, fsync)


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def open_at(clocks: Clocks) -> Iterator[Callable[..., DiskSpool]]:
    """Returns: a factory of disk spools on the test's clocks, all closed after the test."""
    made: list[DiskSpool] = []

    def make(directory: Path, **options: object) -> DiskSpool:
        arguments: dict[str, object] = {
            "max_bytes": 1 << 20,
            "max_age_seconds": DAY,
            "memory_max_bytes": 1 << 20,
            "wall": clocks.wall,
            "monotonic": clocks.mono,
        }
        arguments.update(options)
        spool = DiskSpool(directory, **arguments)  # type: ignore[arg-type]
        made.append(spool)
        return spool

    yield make
    for spool in made:
        spool.close()


def batch(seq: int, size: int = 100, at: float = 0.0) -> SpooledBatch:
    return SpooledBatch(seq, bytes([seq % 256]) * size, at)


def drain(spool: DiskSpool) -> list[int]:
    """Peek and ack until empty. Returns: the seqs in the order they came out."""
    seqs: list[int] = []
    while (item := spool.peek()) is not None and len(seqs) < 100_000:
        assert item.payload == batch(item.seq, len(item.payload)).payload
        seqs.append(item.seq)
        spool.ack(item)
    return seqs


def batch_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob("*.batch"))


def file_of(directory: Path, seq: int) -> Path:
    return directory / f"{seq:020d}.batch"


# --- order and restarts ----------------------------------------------------------------------


def test_fifo_one_file_per_batch_in_the_documented_format(tmp_path: Path, open_at) -> None:
    spool = open_at(tmp_path / "spool")
    for seq in (3, 4, 5):
        spool.append(batch(seq))
    assert batch_files(tmp_path / "spool") == [f"{seq:020d}.batch" for seq in (3, 4, 5)]
    data = file_of(tmp_path / "spool", 4).read_bytes()
    magic, version, _, length, crc, seq, created, header_crc = struct.unpack(
        ">4sHHIIqdI", data[:HEADER_BYTES]
    )
    payload = data[HEADER_BYTES:]
    assert (magic, version, length, seq, created) == (MAGIC, 1, 100, 4, T0)
    assert crc == zlib.crc32(payload) and header_crc == zlib.crc32(data[: HEADER_BYTES - 4])
    assert payload == batch(4).payload
    assert spool.pending() == 3
    assert drain(spool) == [3, 4, 5]
    assert batch_files(tmp_path / "spool") == []


def test_batches_survive_a_restart_in_order(tmp_path: Path, open_at, clocks: Clocks) -> None:
    first = open_at(tmp_path)
    for seq in range(5):
        first.append(batch(seq))
    head = first.peek()
    assert head is not None
    first.ack(head)
    first.close()
    clocks.advance(100.0)
    second = open_at(tmp_path)
    stats = second.stats(0.0)
    assert (stats.batches, stats.bytes) == (4, 4 * (HEADER_BYTES + 100))
    assert stats.oldest_age_seconds == 100.0  # from the header's wall time, across the restart
    second.append(batch(5))
    assert drain(second) == [1, 2, 3, 4, 5]


def test_the_directory_is_created_private(tmp_path: Path, open_at) -> None:
    directory = tmp_path / "state" / "spool"
    open_at(directory).append(batch(0))
    assert directory.stat().st_mode & 0o777 == 0o700
    assert file_of(directory, 0).stat().st_mode & 0o777 == 0o600


def test_peek_many_respects_count_and_bytes_but_always_returns_one(tmp_path: Path, open_at) -> None:
    spool = open_at(tmp_path)
    for seq in range(6):
        spool.append(batch(seq, size=100))
    assert [item.seq for item in spool.peek_many(4, 10_000)] == [0, 1, 2, 3]
    assert [item.seq for item in spool.peek_many(10, 250)] == [0, 1]
    assert [item.seq for item in spool.peek_many(10, 10)] == [0]
    assert spool.pending() == 6  # peeking takes nothing away


def test_an_ack_of_a_batch_dropped_while_in_flight_is_harmless(tmp_path: Path, open_at) -> None:
    spool = open_at(tmp_path, max_bytes=3 * (HEADER_BYTES + 100))
    spool.append(batch(0))
    in_flight = spool.peek()
    assert in_flight is not None
    for seq in (1, 2, 3):
        spool.append(batch(seq))  # over budget: batch 0 is dropped while "being sent"
    spool.ack(in_flight)
    assert drain(spool) == [1, 2, 3]


# --- crashes and damaged files --------------------------------------------------------------


def test_leftovers_of_a_crash_mid_write_are_cleaned_up(tmp_path: Path, open_at) -> None:
    first = open_at(tmp_path)
    for seq in range(3):
        first.append(batch(seq))
    first.close()
    # A crash while writing batch 3: its temp file is there, never renamed.
    (tmp_path / f".{3:020d}.batch.tmp").write_bytes(encode_record(3, b"x" * 100, T0)[:50])
    # Without fsync a power loss can leave a renamed but truncated file.
    whole = encode_record(4, batch(4).payload, T0)
    file_of(tmp_path, 4).write_bytes(whole[: len(whole) - 10])
    file_of(tmp_path, 5).write_bytes(whole[:10])  # not even a header
    second = open_at(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))
    assert sorted(path.name for path in (tmp_path / CORRUPT_DIR).iterdir()) == [
        f"{4:020d}.batch",
        f"{5:020d}.batch",
    ]
    assert second.stats(0.0).corrupt_records_total == 2
    assert drain(second) == [0, 1, 2]


def test_a_payload_with_a_bad_checksum_is_skipped_and_counted(
    tmp_path: Path, open_at, caplog: pytest.LogCaptureFixture
) -> None:
    spool = open_at(tmp_path)
    for seq in range(4):
        spool.append(batch(seq))
    damaged = file_of(tmp_path, 1)
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit at rest: same length, header intact
    damaged.write_bytes(bytes(data))
    assert drain(spool) == [0, 2, 3]
    assert spool.stats(0.0).corrupt_records_total == 1
    assert (tmp_path / CORRUPT_DIR / damaged.name).exists()
    assert "payload checksum mismatch" in caplog.text


def test_damaged_headers_are_found_at_open(tmp_path: Path, open_at) -> None:
    good = encode_record(0, batch(0).payload, T0)
    file_of(tmp_path, 0).write_bytes(good)
    file_of(tmp_path, 1).write_bytes(b"JUNK" + good[4:])  # bad magic
    flipped = bytearray(encode_record(2, batch(2).payload, T0))
    flipped[20] ^= 0x01  # inside the seq field: header checksum fails
    file_of(tmp_path, 2).write_bytes(bytes(flipped))
    file_of(tmp_path, 3).write_bytes(encode_record(7, batch(3).payload, T0))  # wrong name
    (tmp_path / "notanumber.batch").write_bytes(good)
    spool = open_at(tmp_path)
    assert spool.stats(0.0).corrupt_records_total == 4
    assert drain(spool) == [0]


def test_the_corrupt_folder_keeps_only_a_few(tmp_path: Path, open_at) -> None:
    for seq in range(CORRUPT_KEPT + 4):
        file_of(tmp_path, seq).write_bytes(b"garbage")
    spool = open_at(tmp_path)
    assert spool.stats(0.0).corrupt_records_total == CORRUPT_KEPT + 4
    assert len(list((tmp_path / CORRUPT_DIR).iterdir())) == CORRUPT_KEPT


def test_a_rejected_batch_is_kept_aside_with_its_reason(tmp_path: Path, open_at) -> None:
    spool = open_at(tmp_path)
    for seq in range(3):
        spool.append(batch(seq))
    head = spool.peek()
    assert head is not None
    spool.reject(head, "422 invalid_batch: metrics.0: bad name")
    assert spool.pending() == 2
    assert batch_files(tmp_path) == [f"{seq:020d}.batch" for seq in (1, 2)]
    kept = tmp_path / REJECTED_DIR / f"{0:020d}.batch"
    assert record.decode_record(kept.read_bytes(), 0) == batch(0).payload  # as it was sent
    reason = kept.with_suffix(".reason").read_text()
    assert "422 invalid_batch: metrics.0: bad name" in reason
    spool.close()
    assert drain(open_at(tmp_path)) == [1, 2]  # a restart does not send it again


def test_the_rejected_folder_keeps_only_a_few(tmp_path: Path, open_at) -> None:
    spool = open_at(tmp_path)
    for seq in range(REJECTED_KEPT + 5):
        spool.append(batch(seq))
        head = spool.peek()
        assert head is not None
        spool.reject(head, f"reason {seq}")
    kept = sorted(path.name for path in (tmp_path / REJECTED_DIR).iterdir())
    assert len(kept) == 2 * REJECTED_KEPT  # each batch with its reason
    newest = REJECTED_KEPT + 4
    assert f"{newest:020d}.batch" in kept and f"{newest:020d}.reason" in kept
    assert f"{0:020d}.batch" not in kept and f"{0:020d}.reason" not in kept


def test_a_rejected_batch_held_in_memory_is_forgotten(tmp_path: Path, open_at) -> None:
    disk = FlakyDisk()
    spool = open_at(tmp_path, write=disk)
    disk.error = errno.ENOSPC
    spool.append(batch(0))
    spool.append(batch(1))
    head = spool.peek()
    assert head is not None and head.seq == 0
    spool.reject(head, "refused")
    assert drain(spool) == [1]


def test_a_file_removed_behind_the_spools_back_is_skipped(tmp_path: Path, open_at) -> None:
    spool = open_at(tmp_path)
    for seq in range(3):
        spool.append(batch(seq))
    file_of(tmp_path, 1).unlink()
    assert drain(spool) == [0, 2]
    assert spool.stats(0.0).corrupt_records_total == 1


# --- budgets ---------------------------------------------------------------------------------


def test_the_byte_budget_drops_the_oldest_and_counts(tmp_path: Path, open_at) -> None:
    record = HEADER_BYTES + 100
    spool = open_at(tmp_path, max_bytes=3 * record + 10)
    for seq in range(5):
        spool.append(batch(seq))
    stats = spool.stats(0.0)
    assert (stats.batches, stats.bytes, stats.budget_bytes) == (3, 3 * record, 3 * record + 10)
    assert (stats.dropped_batches_total, stats.dropped_bytes_total) == (2, 2 * record)
    assert batch_files(tmp_path) == [f"{seq:020d}.batch" for seq in (2, 3, 4)]
    assert drain(spool) == [2, 3, 4]


def test_the_age_budget_uses_the_stored_wall_time_across_restarts(
    tmp_path: Path, open_at, clocks: Clocks
) -> None:
    spool = open_at(tmp_path)
    for hour in range(24):  # a day of batches, one an hour
        spool.append(batch(hour))
        clocks.advance(3600.0)
    # Now 24 h after batch 0: it is exactly at the budget, not past it.
    assert spool.stats(0.0).oldest_age_seconds == DAY
    spool.close()
    clocks.advance(2 * 3600.0 + 1)  # the agent was down two hours
    reopened = open_at(tmp_path)
    stats = reopened.stats(0.0)
    assert stats.dropped_batches_total == 3  # batches 0, 1, 2 are past 24 h
    assert stats.oldest_age_seconds == DAY - 3600.0 + 1  # batch 3, made 23 h before the stop
    clocks.advance(3600.0)
    assert [item.seq for item in reopened.peek_many(2, 1 << 20)] == [4, 5]
    assert reopened.stats(0.0).dropped_batches_total == 4
    assert batch_files(tmp_path)[0] == f"{4:020d}.batch"


def test_drops_are_logged_at_a_bounded_rate(
    tmp_path: Path, open_at, caplog: pytest.LogCaptureFixture
) -> None:
    spool = open_at(tmp_path, max_bytes=HEADER_BYTES + 100)
    for seq in range(50):
        spool.append(batch(seq))
    assert spool.stats(0.0).dropped_batches_total == 49
    drops = [record for record in caplog.records if "dropped batch" in record.getMessage()]
    assert len(drops) == 1


# --- a failing disk --------------------------------------------------------------------------


def test_a_full_disk_degrades_to_memory_and_recovers(
    tmp_path: Path, open_at, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    disk = FlakyDisk()
    spool = open_at(tmp_path, write=disk)
    spool.append(batch(0))
    spool.append(batch(1))
    disk.error = errno.ENOSPC
    spool.append(batch(2))
    stats = spool.stats(0.0)
    assert (stats.degraded, stats.degraded_reason, stats.batches) == (True, "ENOSPC", 3)
    calls = disk.calls
    clocks.advance(10.0)
    spool.append(batch(3))  # the disk is not tried again so soon
    assert disk.calls == calls
    assert [item.seq for item in spool.peek_many(10, 1 << 20)] == [0, 1, 2, 3]
    head = spool.peek()
    assert head is not None and head.seq == 0
    spool.ack(head)
    disk.error = None
    clocks.advance(25.0)
    spool.append(batch(4))  # 35 s since the failure: tried, works, memory moves to disk
    stats = spool.stats(0.0)
    assert (stats.degraded, stats.degraded_reason, stats.batches) == (False, "", 4)
    assert batch_files(tmp_path) == [f"{seq:020d}.batch" for seq in (1, 2, 3, 4)]
    degraded_warnings = [r for r in caplog.records if "keeping batches in memory" in r.message]
    assert len(degraded_warnings) == 1
    assert "writing to disk again (2 batch(es) moved from memory)" in caplog.text
    spool.close()
    assert drain(open_at(tmp_path)) == [1, 2, 3, 4]


@pytest.mark.parametrize("error", [errno.EROFS, errno.EIO, errno.EDQUOT, errno.EACCES])
def test_any_write_error_keeps_the_batch_in_memory_in_order(
    tmp_path: Path, open_at, error: int
) -> None:
    disk = FlakyDisk()
    spool = open_at(tmp_path, write=disk)
    spool.append(batch(0))
    disk.error = error
    spool.append(batch(1))
    spool.append(batch(2))
    assert spool.stats(0.0).degraded_reason == errno.errorcode[error]
    assert not list(tmp_path.glob("*.tmp"))  # the failed write left nothing behind
    assert drain(spool) == [0, 1, 2]


def test_memory_fallback_has_its_own_budget(tmp_path: Path, open_at) -> None:
    disk = FlakyDisk()
    disk.error = errno.ENOSPC
    spool = open_at(tmp_path, write=disk, memory_max_bytes=250)
    for seq in range(5):
        spool.append(batch(seq))
    stats = spool.stats(0.0)
    assert (stats.batches, stats.dropped_batches_total, stats.dropped_bytes_total) == (2, 3, 300)
    assert drain(spool) == [3, 4]


def test_batches_in_memory_also_age_out(tmp_path: Path, open_at, clocks: Clocks) -> None:
    disk = FlakyDisk()
    disk.error = errno.EIO
    spool = open_at(tmp_path, write=disk)
    spool.append(batch(0))
    clocks.advance(DAY + 1)
    spool.append(batch(1))
    assert spool.stats(0.0).dropped_batches_total == 1
    assert drain(spool) == [1]


def test_an_unusable_directory_runs_in_memory_until_it_can_be_created(
    tmp_path: Path, open_at, clocks: Clocks
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")
    spool = open_at(blocker / "spool")
    spool.append(batch(0))
    stats = spool.stats(0.0)
    assert stats.degraded and stats.degraded_reason in ("EEXIST", "ENOTDIR")
    blocker.unlink()
    clocks.advance(31.0)
    spool.append(batch(1))
    assert not spool.stats(0.0).degraded
    assert batch_files(blocker / "spool") == [f"{seq:020d}.batch" for seq in (0, 1)]


def test_a_directory_in_use_by_another_agent_is_not_shared(
    tmp_path: Path, open_at, clocks: Clocks
) -> None:
    first = open_at(tmp_path)
    second = open_at(tmp_path)
    assert second.stats(0.0).degraded_reason == "EBUSY"
    second.append(batch(7))
    assert batch_files(tmp_path) == []  # kept in the second one's memory
    first.close()
    clocks.advance(31.0)
    second.append(batch(8))
    assert batch_files(tmp_path) == [f"{seq:020d}.batch" for seq in (7, 8)]


# --- threads and wiring ----------------------------------------------------------------------


def test_one_thread_appends_while_another_delivers(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1 << 24, max_age_seconds=DAY, memory_max_bytes=1 << 20)
    total = 300
    received: list[int] = []

    def ship() -> None:
        while len(received) < total:
            for item in spool.peek_many(7, 1 << 20):
                received.append(item.seq)
                spool.ack(item)

    shipper = threading.Thread(target=ship)
    shipper.start()
    try:
        for seq in range(total):
            spool.append(batch(seq))
    finally:
        shipper.join(timeout=60)
        spool.close()
    assert received == list(range(total))
    assert batch_files(tmp_path) == []


def test_open_spool_uses_the_state_directory_or_the_configured_one(tmp_path: Path) -> None:
    settings = load_settings(None, {"state_dir": tmp_path / "state"})
    spool = open_spool(settings)
    try:
        assert spool.directory == tmp_path / "state" / "spool"
        assert spool.stats(0.0).budget_bytes == 512 << 20
    finally:
        spool.close()
    settings = load_settings(
        None, {"state_dir": tmp_path / "state", "spool": {"dir": tmp_path / "elsewhere"}}
    )
    spool = open_spool(settings)
    try:
        spool.append(batch(0))
        assert batch_files(tmp_path / "elsewhere") == [f"{0:020d}.batch"]
    finally:
        spool.close()


def test_without_fsync_batches_are_still_written(tmp_path: Path, open_at) -> None:
    spool = open_at(tmp_path, fsync=False)
    spool.append(batch(0))
    spool.close()
    assert drain(open_at(tmp_path)) == [0]


def test_quiet_when_nothing_goes_wrong(
    tmp_path: Path, open_at, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    spool = open_at(tmp_path)
    for seq in range(3):
        spool.append(batch(seq))
    drain(spool)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_the_agents_own_metrics_report_the_spool(tmp_path: Path, open_at) -> None:
    disk = FlakyDisk()
    spool = open_at(tmp_path, write=disk, max_bytes=2 * (HEADER_BYTES + 100))
    for seq in range(3):
        spool.append(batch(seq))
    file_of(tmp_path, 1).write_bytes(b"damaged")
    disk.error = errno.ENOSPC
    spool.append(batch(3))
    collector = AgentSelfCollector(
        lambda: spool.stats(0.0),
        lambda: ShipperStats(
            0,
            0,
            0,
            0,
            poison_batches_total=1,
            restarts_total=3,
            compact_batches_total=5,
            compact_fallbacks_total=4,
        ),
        lambda: None,
        tmp_path / "no-proc",
        state_write_errors=lambda: 2,
    )
    spool.peek()  # finds the damaged file
    values = {sample.name: sample.value for sample in collector.collect(T0)}
    assert catalog_problems(collector.collect(T0), source="agent") == []
    assert values["dcmon_agent_spool_batches"] == 2.0  # batch 2 on disk, batch 3 in memory
    assert values["dcmon_agent_spool_bytes"] == HEADER_BYTES + 100 + 100
    assert values["dcmon_agent_spool_dropped_batches_total"] == 1.0
    assert values["dcmon_agent_spool_dropped_bytes_total"] == HEADER_BYTES + 100
    assert values["dcmon_agent_spool_corrupt_records_total"] == 1.0
    assert values["dcmon_agent_spool_degraded"] == 1.0
    assert values["dcmon_agent_spool_budget_bytes"] == 2 * (HEADER_BYTES + 100)
    assert values["dcmon_agent_spool_oldest_age_seconds"] == 0.0
    assert values["dcmon_agent_poison_batches_total"] == 1.0
    assert values["dcmon_agent_shipper_restarts_total"] == 3.0
    assert values["dcmon_agent_compact_batches_total"] == 5.0
    assert values["dcmon_agent_compact_fallbacks_total"] == 4.0
    assert values["dcmon_agent_state_write_errors_total"] == 2.0
