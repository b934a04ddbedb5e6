"""The shipper delivers oldest first, backs off on failure, and sets refused batches aside."""

from __future__ import annotations

import random
import threading
import time

import pytest

from agent.backoff import Backoff
from agent.shipper import Shipper
from agent.spool import MemorySpool, SpooledBatch
from agent.transport.base import RejectedError, RetryableError
from agent.transport.memory import MemoryTransport
from agent.wire.schema import Ack


class ScriptedServer:
    """Answers each send with the next scripted outcome (an exception, or accept)."""

    def __init__(self, outcomes: list[Exception | None]) -> None:
        self.outcomes = outcomes
        self.received: list[bytes] = []

    def __call__(self, payload: bytes) -> Ack:
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        self.received.append(payload)
        return Ack(status="accepted", seq=0)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _setup(outcomes: list[Exception | None], batches: int = 3):
    spool = MemorySpool(1 << 20)
    for seq in range(batches):
        spool.append(SpooledBatch(seq, f"batch-{seq}".encode(), 0.0))
    server = ScriptedServer(outcomes)
    clock = FakeMonotonic()
    shipper = Shipper(
        spool, MemoryTransport(server), Backoff(1.0, 60.0, random.Random(4)), monotonic=clock
    )
    return spool, server, shipper, clock


def test_delivers_in_order() -> None:
    spool, server, shipper, _ = _setup([])
    while shipper.deliver_once():
        pass
    assert server.received == [b"batch-0", b"batch-1", b"batch-2"]
    assert spool.peek() is None
    assert shipper.stats().sent_batches_total == 3


def test_retryable_failure_keeps_the_batch_and_backs_off() -> None:
    _spool, server, shipper, _clock = _setup([RetryableError("down"), RetryableError("down")])
    assert shipper.deliver_once() is False
    assert shipper.deliver_once() is False
    stats = shipper.stats()
    assert (stats.send_failures_total, stats.consecutive_failures) == (2, 2)
    assert shipper.deliver_once() is True
    assert server.received == [b"batch-0"]  # nothing skipped, nothing duplicated
    assert shipper.stats().consecutive_failures == 0


def test_backoff_grows_with_jitter_and_respects_retry_after() -> None:
    backoff = Backoff(1.0, 8.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    bounds = [(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 8.0), (4.0, 8.0), (4.0, 8.0)]
    for delay, (low, high) in zip(delays, bounds, strict=True):
        assert low <= delay <= high
    assert backoff.next_delay(hint=30.0) == 30.0
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_rejected_batch_is_set_aside_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    _spool, server, shipper, _ = _setup([RejectedError("invalid_batch: seq", 422, "invalid_batch")])
    assert shipper.deliver_once() is True
    assert shipper.deliver_once() is True
    assert server.received == [b"batch-1"]
    assert shipper.stats().rejected_batches_total == 1
    assert "refused batch 0 for good" in caplog.text


def test_failures_are_logged_once_then_quietly(caplog: pytest.LogCaptureFixture) -> None:
    _spool, _server, shipper, clock = _setup([RetryableError("down")] * 5)
    for _ in range(5):
        shipper.deliver_once()
        clock.now += 1.0
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1


def test_thread_delivers_what_the_ticking_thread_appends() -> None:
    spool = MemorySpool(1 << 20)
    delivered = threading.Event()
    received: list[bytes] = []

    def handler(payload: bytes) -> Ack:
        received.append(payload)
        if len(received) == 2:
            delivered.set()
        return Ack(status="accepted", seq=0)

    shipper = Shipper(spool, MemoryTransport(handler), Backoff(0.01, 0.05))
    shipper.start()
    try:
        for seq in range(2):
            spool.append(SpooledBatch(seq, b"p%d" % seq, time.monotonic()))
            shipper.notify()
        assert delivered.wait(5.0)
    finally:
        left = shipper.stop(flush_timeout=1.0)
    assert received == [b"p0", b"p1"]
    assert left == 0


def test_stop_flushes_pending_batches_when_the_server_answers() -> None:
    _spool, server, shipper, _ = _setup([], batches=4)
    shipper.start()
    left = shipper.stop(flush_timeout=5.0)
    assert left == 0
    assert len(server.received) == 4
