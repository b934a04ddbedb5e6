"""The in-memory spool: FIFO, bounded by bytes, drops the oldest and counts it."""

from __future__ import annotations

from agent.spool import MemorySpool, SpooledBatch


def _batch(seq: int, size: int = 100, at: float = 0.0) -> SpooledBatch:
    return SpooledBatch(seq, b"x" * size, at)


def test_fifo_with_ack() -> None:
    spool = MemorySpool(max_bytes=10_000)
    for seq in range(3):
        spool.append(_batch(seq))
    first = spool.peek()
    assert first is not None and first.seq == 0
    spool.ack(first)
    second = spool.peek()
    assert second is not None and second.seq == 1
    assert spool.stats(0.0).batches == 2


def test_budget_drops_oldest_and_counts() -> None:
    spool = MemorySpool(max_bytes=350)
    for seq in range(5):
        spool.append(_batch(seq, size=100, at=float(seq)))
    stats = spool.stats(10.0)
    assert (stats.batches, stats.bytes) == (3, 300)
    assert (stats.dropped_batches_total, stats.dropped_bytes_total) == (2, 200)
    assert stats.oldest_age_seconds == 8.0
    oldest = spool.peek()
    assert oldest is not None and oldest.seq == 2


def test_ack_of_a_batch_dropped_while_sending_is_harmless() -> None:
    spool = MemorySpool(max_bytes=150)
    spool.append(_batch(0))
    in_flight = spool.peek()
    assert in_flight is not None
    spool.append(_batch(1))  # over budget: batch 0 is dropped while "being sent"
    spool.ack(in_flight)
    remaining = spool.peek()
    assert remaining is not None and remaining.seq == 1
    assert spool.stats(0.0).batches == 1


def test_a_single_batch_larger_than_the_budget_is_kept() -> None:
    spool = MemorySpool(max_bytes=50)
    spool.append(_batch(0, size=100))
    assert spool.stats(0.0).batches == 1


def test_peek_many_takes_the_oldest_within_count_and_bytes() -> None:
    spool = MemorySpool(max_bytes=10_000)
    for seq in range(5):
        spool.append(_batch(seq))
    assert [batch.seq for batch in spool.peek_many(3, 10_000)] == [0, 1, 2]
    assert [batch.seq for batch in spool.peek_many(5, 250)] == [0, 1]
    assert [batch.seq for batch in spool.peek_many(5, 1)] == [0]  # the oldest always comes
    assert spool.pending() == 5
    assert spool.stats(0.0).budget_bytes == 10_000
