"""Property: whatever the interleaving of append, peek, ack, reopen and disk failures, the disk
spool hands out batches oldest seq first and never hands out an acknowledged batch again; what
reached the disk survives a reopen, what only reached memory does not."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.spool import DiskSpool, SpooledBatch, record

Operation = tuple[str, int]

# Appends, peeks and acks are common, reopens and disk trouble rarer (sampled_from draws each
# entry alike, so repeating a name weights it).
operations = st.lists(
    st.tuples(
        st.sampled_from(
            ["append"] * 4
            + ["peek"] * 2
            + ["ack"] * 2
            + ["peek_many", "reopen", "disk_fails", "disk_heals"]
        ),
        st.integers(1, 5),
    ),
    min_size=8,
    max_size=60,
)


class Harness:
    """The spool under test next to a model of what it must hold."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.wall = 1_800_000_000.0
        self.mono = 0.0
        self.failing = False
        self.spool = self._open()
        self.next_seq = 0
        self.pending: list[int] = []  # the model: seqs not yet acknowledged, oldest first
        self.durable: set[int] = set()  # seqs whose file was written
        self.acked: set[int] = set()
        self.in_flight: SpooledBatch | None = None

    def _open(self) -> DiskSpool:
        return DiskSpool(
            self.directory,
            max_bytes=1 << 30,
            max_age_seconds=1e9,
            memory_max_bytes=1 << 30,
            fsync=False,
            wall=lambda: self.wall,
            monotonic=lambda: self.mono,
            write=self._write,
        )

    def _write(self, path: Path, data: bytes, fsync: bool) -> None:
        if self.failing:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        record.write_file(path, data, fsync)

    def run(self, name: str, argument: int) -> None:
        getattr(self, name)(argument)

    def append(self, _: int) -> None:
        # Past the retry interval every time, so each append tries the disk: when it works, the
        # batches kept in memory are written too.
        self.mono += 31.0
        self.wall += 1.0
        seq = self.next_seq
        self.next_seq += 1
        self.spool.append(SpooledBatch(seq, f"batch {seq}".encode(), self.mono))
        self.pending.append(seq)
        if not self.failing:
            self.durable.update(self.pending)

    def peek(self, _: int) -> None:
        item = self.spool.peek()
        if not self.pending:
            assert item is None
            return
        assert item is not None
        assert item.seq == self.pending[0] and item.seq not in self.acked
        assert item.payload == f"batch {item.seq}".encode()
        self.in_flight = item

    def peek_many(self, limit: int) -> None:
        seqs = [item.seq for item in self.spool.peek_many(limit, 1 << 30)]
        assert seqs == self.pending[:limit]

    def ack(self, _: int) -> None:
        if self.in_flight is None:
            return
        self.spool.ack(self.in_flight)
        seq = self.in_flight.seq
        if seq in self.pending:
            self.pending.remove(seq)
        self.acked.add(seq)
        self.in_flight = None

    def reopen(self, _: int) -> None:
        self.spool.close()
        self.spool = self._open()
        self.pending = [seq for seq in self.pending if seq in self.durable]
        assert self.spool.pending() == len(self.pending)

    def disk_fails(self, _: int) -> None:
        self.failing = True

    def disk_heals(self, _: int) -> None:
        self.failing = False


@settings(max_examples=150, deadline=None)
@given(operations)
def test_any_interleaving_keeps_fifo_and_forgets_acked_batches(ops: list[Operation]) -> None:
    with tempfile.TemporaryDirectory(prefix="dcmon-spool-") as scratch:
        harness = Harness(Path(scratch))
        try:
            for name, argument in ops:
                harness.run(name, argument)
            harness.reopen(0)
            seen: list[int] = []
            while (item := harness.spool.peek()) is not None and len(seen) <= harness.next_seq:
                seen.append(item.seq)
                harness.spool.ack(item)
            assert seen == harness.pending
            assert not set(seen) & harness.acked
        finally:
            harness.spool.close()
