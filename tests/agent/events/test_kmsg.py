"""The kernel-log reader over recorded lines: every XID spelling, noise, EPIPE, no permission."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.events.kmsg import KmsgReader, parse_record, parse_xid

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "kmsg" / "xid.kmsg"
NOW = 1_700_000_000.0
UPTIME = 5_100.0  # seconds since boot when the test "reads" the log


def _reader(path: Path, **kwargs: object) -> KmsgReader:
    return KmsgReader(path, start_at_end=False, monotonic=lambda: UPTIME, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    copy = tmp_path / "kmsg"
    shutil.copyfile(SAMPLE, copy)
    return copy


def test_every_xid_in_the_sample_is_read(sample: Path) -> None:
    reader = _reader(sample)
    try:
        observations = reader.poll(NOW)
    finally:
        reader.close()
    got = [
        (o.code, o.pci_bus_id, o.pid, o.process, o.root_cause, o.recovery_action)
        for o in observations
    ]
    assert got == [
        (48, "00000000:18:00.0", 48211, "python3", None, None),
        (63, "00000000:18:00.0", None, None, None, None),
        (94, "00000000:2A:00.0", 51877, "pt_main_thread", None, None),
        (13, "00000000:3A:00.0", 60001, "train", None, None),
        (119, "00000000:5D:00.0", None, None, None, None),
        (120, "00000000:5D:00.0", None, None, None, None),
        (79, "00000000:9A:00.0", None, None, None, None),
        (154, "00000000:AB:00.0", None, None, None, 1),
        (79, "00000000:BA:00.0", None, None, 145, None),
        (31, "00000000:DB:00.0", 1234, None, None, None),
        (43, "00000000:DB:00.0", 77123, "infer", None, None),
    ]
    assert all(o.source == "kmsg" and o.gpu_index is None for o in observations)
    first = observations[0]
    # Logged 5021.338765 s after boot, read at 5100 s after boot.
    assert first.time == pytest.approx(NOW - (UPTIME - 5021.338765))
    assert first.message.startswith("NVRM: Xid (PCI:0000:18:00): 48, pid=48211, name=python3,")


@pytest.mark.parametrize(
    "line",
    [
        "",
        " SUBSYSTEM=pci",
        "no separator at all",
        "4,1,2;too few header fields",
        "x,1,2,-;bad priority",
        "4,-1,2,-;negative sequence",
    ],
)
def test_garbled_records_are_ignored(line: str) -> None:
    assert parse_record(line) is None


@pytest.mark.parametrize(
    "message",
    [
        "NVRM: GPU 0000:9a:00.0: GPU has fallen off the bus.",
        "NVRM: Xid (PCI:0000:zz:00): 79, damaged bus id",
        "NVRM: Xid (PCI:0000:18:00):",
        "NVRM: Xid (PCI:0000:18:00): 9999999, code out of range",
        "NVRM: Xid (PCI:0000:18:99): 13, device number out of range",
        "nvidia 0000:18:00.0: Xid 13 in another format",
    ],
)
def test_messages_that_are_not_xids_are_ignored(message: str) -> None:
    assert parse_xid(message) is None


def test_an_extended_header_and_a_bare_pid_parse() -> None:
    record = parse_record("4,77,123456,-,caller=T42;NVRM: Xid (PCI:0000:65:00.0): 45, pid=99, x")
    assert record is not None and (record.priority, record.seq, record.usec) == (4, 77, 123456)
    xid = parse_xid(record.message)
    assert xid is not None
    assert (xid.pci_bus_id, xid.code, xid.pid, xid.process) == ("00000000:65:00.0", 45, 99, None)


def test_reading_starts_at_the_end_and_picks_up_new_records(tmp_path: Path) -> None:
    log = tmp_path / "kmsg"
    log.write_bytes(SAMPLE.read_bytes())
    reader = KmsgReader(log, monotonic=lambda: UPTIME)  # start_at_end by default
    try:
        assert reader.poll(NOW) == []  # boot messages are not replayed
        with log.open("ab") as writer:
            writer.write(b"4,2000,5090000000,-;NVRM: Xid (PCI:0000:18:00): 79, pid='<unk")
        assert reader.poll(NOW) == []  # half a record: kept for the next poll
        with log.open("ab") as writer:
            writer.write(b"nown>', name=<unknown>, GPU has fallen off the bus.\n")
        (observation,) = reader.poll(NOW)
    finally:
        reader.close()
    assert (observation.code, observation.pci_bus_id) == (79, "00000000:18:00.0")
    assert observation.message.endswith("GPU has fallen off the bus.")


def test_times_stay_within_the_span_since_the_previous_poll(tmp_path: Path) -> None:
    log = tmp_path / "kmsg"
    log.write_bytes(b"")
    reader = KmsgReader(log, monotonic=lambda: UPTIME)
    line = "4,{seq},{usec},-;NVRM: Xid (PCI:0000:18:00): 13, pid=1, name=a, x\n"
    try:
        assert reader.poll(NOW) == []
        with log.open("a") as writer:
            writer.write(line.format(seq=1, usec=4_000_000_000))  # a clock that lags
            writer.write(line.format(seq=2, usec=5_095_000_000))  # in the span: kept as is
            writer.write(line.format(seq=3, usec=6_000_000_000))  # a clock that runs ahead
        times = [o.time for o in reader.poll(NOW + 10)]
    finally:
        reader.close()
    assert times == [NOW, pytest.approx(NOW + 10 - 5), NOW + 10]


def test_a_fifo_is_read_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "kmsg"
    os.mkfifo(fifo)
    reader = _reader(fifo)
    writer: int | None = None
    try:
        assert reader.poll(NOW) == []  # opened, no writer yet
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        assert reader.poll(NOW) == []  # a writer, but nothing written: EAGAIN, no wait
        os.write(writer, b"4,1,5000000000,-;NVRM: Xid (PCI:0000:5d:00): 119, pid=7, name=a, t\n")
        assert [o.code for o in reader.poll(NOW)] == [119]
    finally:
        if writer is not None:
            os.close(writer)
        reader.close()


class _ScriptedDevice:
    """``open``/``read`` seams replaying one record per read, with errors in between."""

    def __init__(self, steps: list[bytes | OSError]) -> None:
        self._steps: Iterator[bytes | OSError] = iter(steps)
        self.opened: list[tuple[Path, int]] = []
        self.closed = False

    def open(self, path: Path, flags: int) -> int:
        self.opened.append((path, flags))
        return os.open(os.devnull, os.O_RDONLY)  # a real fd, so close() works

    def read(self, fd: int, size: int) -> bytes:
        step = next(self._steps, BlockingIOError(errno.EAGAIN, "again"))
        if isinstance(step, OSError):
            raise step
        return step


def test_overwritten_records_are_counted_and_reading_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    device = _ScriptedDevice(
        [
            b"4,10,5000000000,-;NVRM: Xid (PCI:0000:18:00): 48, pid=1, name=a, x\n",
            BrokenPipeError(errno.EPIPE, "overwritten"),
            b"4,90,5000000100,-;NVRM: Xid (PCI:0000:18:00): 63, pid=1, name=a, y\n",
            BlockingIOError(errno.EAGAIN, "again"),
            BrokenPipeError(errno.EPIPE, "overwritten"),
            BrokenPipeError(errno.EPIPE, "overwritten"),
            b"4,95,5000000200,-;NVRM: Xid (PCI:0000:18:00): 94, pid=1, name=a, z\n",
        ]
    )
    reader = KmsgReader(Path("/dev/kmsg"), opener=device.open, read=device.read)
    try:
        with caplog.at_level(logging.WARNING):
            assert [o.code for o in reader.poll(NOW)] == [48, 63]  # EAGAIN ends the poll
            assert reader.overwritten == 1
            assert [o.code for o in reader.poll(NOW)] == [94]
    finally:
        reader.close()
    assert reader.overwritten == 3
    assert len(caplog.records) == 1  # the first overrun warns; later ones are quieter
    (path, flags) = device.opened[0]
    assert path == Path("/dev/kmsg")
    assert flags & os.O_NONBLOCK and (flags & os.O_ACCMODE) == os.O_RDONLY


def test_permission_denied_turns_the_source_off_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts = []

    def refuse(path: Path, flags: int) -> int:
        attempts.append(path)
        raise PermissionError(errno.EPERM, "Operation not permitted", str(path))

    reader = KmsgReader(Path("/dev/kmsg"), opener=refuse)
    with caplog.at_level(logging.INFO):
        assert reader.poll(NOW) == []
        assert reader.poll(NOW) == []
    assert not reader.active
    assert len(attempts) == 1  # not retried every tick
    (record,) = caplog.records
    assert "Operation not permitted" in record.getMessage()
    assert "CAP_SYSLOG" in record.getMessage()


def test_a_missing_device_turns_the_source_off(tmp_path: Path) -> None:
    reader = KmsgReader(tmp_path / "absent")
    assert reader.poll(NOW) == []
    assert not reader.active


def test_a_read_error_turns_the_source_off(caplog: pytest.LogCaptureFixture) -> None:
    device = _ScriptedDevice([OSError(errno.EIO, "I/O error")])
    reader = KmsgReader(Path("/dev/kmsg"), opener=device.open, read=device.read)
    with caplog.at_level(logging.WARNING):
        assert reader.poll(NOW) == []
        assert reader.poll(NOW) == []
    assert not reader.active
    assert len(caplog.records) == 1 and "I/O error" in caplog.records[0].getMessage()
