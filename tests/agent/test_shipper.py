"""The shipper delivers oldest first, backs off on failure, and sets refused batches aside."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence

import pytest

from agent.backoff import Backoff
from agent.shipper import BULK_RETRY_SECONDS, Shipper
from agent.spool import MemorySpool, SpooledBatch
from agent.transport.base import BulkResult, BulkUnsupportedError, RejectedError, RetryableError
from agent.transport.memory import MemoryTransport
from agent.wire.bench import BenchOrder
from agent.wire.schema import Ack, RefusedSeries


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
    assert 30.0 <= backoff.next_delay(hint=30.0) <= 33.0  # the server's word, not 4..8 s
    assert 0.5 <= backoff.next_delay(hint=0.5) <= 0.55  # even when shorter than the schedule
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


# --- replaying a backlog in bulk --------------------------------------------------------------


class BulkServer:
    """Answers bulk requests from a script: a list of statuses per request, or an exception."""

    def __init__(self, script: list[list[str] | Exception]) -> None:
        self.script = script
        self.requests: list[list[bytes]] = []

    def __call__(self, payloads: Sequence[bytes]) -> list[BulkResult]:
        step = self.script.pop(0) if self.script else ["accepted"] * len(payloads)
        if isinstance(step, Exception):
            raise step
        self.requests.append(list(payloads))
        results: list[BulkResult] = []
        for payload, status in zip(payloads, step, strict=True):
            if status == "rejected":
                results.append(BulkResult("rejected", None, 0, 422, "invalid_batch", "bad seq"))
            elif status == "retry":
                results.append(BulkResult("retry", None, 0, 503, "storage_unavailable", "later"))
            else:
                seq = int(payload.split(b"-")[1])
                results.append(
                    BulkResult("duplicate" if status == "duplicate" else "accepted", seq)
                )
        return results


def _replay_setup(
    script: list[list[str] | Exception], batches: int = 5, per_request: int = 3
) -> tuple[MemorySpool, BulkServer, ScriptedServer, MemoryTransport, Shipper, FakeMonotonic]:
    spool = MemorySpool(1 << 20)
    for seq in range(batches):
        spool.append(SpooledBatch(seq, f"batch-{seq}".encode(), 0.0))
    bulk = BulkServer(script)
    single = ScriptedServer([])
    transport = MemoryTransport(single, bulk)
    clock = FakeMonotonic()
    shipper = Shipper(
        spool,
        transport,
        Backoff(1.0, 60.0, random.Random(4)),
        monotonic=clock,
        replay_batches_per_request=per_request,
        replay_requests_per_second=2.0,
    )
    return spool, bulk, single, transport, shipper, clock


def test_a_backlog_goes_in_bulk_requests_oldest_first() -> None:
    spool, bulk, single, transport, shipper, _ = _replay_setup([])
    while shipper.deliver_once():
        pass
    assert bulk.requests == [[b"batch-0", b"batch-1", b"batch-2"], [b"batch-3", b"batch-4"]]
    assert single.received == []
    assert transport.requests == 2
    assert spool.pending() == 0
    assert shipper.stats().sent_batches_total == 5


def test_a_lone_fresh_batch_goes_alone_and_at_once() -> None:
    _spool, bulk, single, _, shipper, clock = _replay_setup([], batches=1)
    assert shipper.deliver_once() is True
    assert (bulk.requests, single.received) == ([], [b"batch-0"])
    assert shipper.next_attempt_at <= clock.now  # nothing waits: no pacing


def test_the_backlog_is_paced() -> None:
    _, _, _, _, shipper, clock = _replay_setup([], batches=7)
    shipper.deliver_once()
    assert shipper.next_attempt_at == clock.now + 0.5  # 2 requests a second
    clock.now += 0.5
    shipper.deliver_once()
    assert shipper.next_attempt_at == clock.now + 0.5
    clock.now += 0.5
    shipper.deliver_once()  # the last one: nothing left, nothing to pace
    assert shipper.next_attempt_at <= clock.now


def test_per_batch_verdicts_ack_up_to_the_first_retry(caplog: pytest.LogCaptureFixture) -> None:
    spool, bulk, _, _, shipper, clock = _replay_setup(
        [["accepted", "duplicate", "rejected", "retry", "accepted"]], per_request=5
    )
    assert shipper.deliver_once() is False
    assert [batch.seq for batch in spool.peek_many(10, 1 << 20)] == [3, 4]
    stats = shipper.stats()
    assert (stats.sent_batches_total, stats.rejected_batches_total) == (2, 1)
    assert (stats.send_failures_total, stats.consecutive_failures) == (1, 1)
    assert "refused batch 2 for good" in caplog.text and "bad seq" in caplog.text
    assert "503 storage_unavailable later" in caplog.text
    assert shipper.next_attempt_at > clock.now  # backing off
    assert shipper.deliver_once() is True
    assert bulk.requests[-1] == [b"batch-3", b"batch-4"]
    assert shipper.stats().consecutive_failures == 0


def test_retry_after_on_a_bulk_request_is_honoured() -> None:
    spool, _, _, _, shipper, clock = _replay_setup([RetryableError("busy", retry_after=30.0)])
    assert shipper.deliver_once() is False
    assert clock.now + 30.0 <= shipper.next_attempt_at <= clock.now + 33.0
    assert spool.pending() == 5


def test_an_older_server_without_bulk_gets_single_batches_for_a_while(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    spool, bulk, single, _, shipper, clock = _replay_setup(
        [BulkUnsupportedError("server has no bulk ingest (404)")], batches=8
    )
    assert shipper.deliver_once() is True
    assert single.received == [b"batch-0"]
    assert shipper.next_attempt_at == pytest.approx(clock.now + 1 / 6)  # same batches a second
    shipper.deliver_once()
    assert single.received == [b"batch-0", b"batch-1"] and bulk.requests == []
    assert "one batch per request" in caplog.text
    clock.now += BULK_RETRY_SECONDS
    shipper.deliver_once()
    assert bulk.requests == [[b"batch-2", b"batch-3", b"batch-4"]]
    assert spool.pending() == 3


def test_a_bulk_request_too_large_is_split() -> None:
    _, bulk, _, _, shipper, _ = _replay_setup(
        [RejectedError("body too large", 413, "body_too_large")], batches=4, per_request=4
    )
    assert shipper.deliver_once() is False
    assert shipper.stats().send_failures_total == 0  # not a failure: a smaller request follows
    while shipper.deliver_once():
        pass
    assert [len(request) for request in bulk.requests] == [2, 2]


def test_a_bulk_request_the_server_fails_on_keeps_every_batch() -> None:
    spool, bulk, single, _, shipper, _ = _replay_setup(
        [RetryableError("server answered 501: not implemented", None, 501)]
    )
    pending = spool.pending()
    assert shipper.deliver_once() is False
    assert single.received == [] and bulk.requests == []
    assert spool.pending() == pending
    assert shipper.stats().rejected_batches_total == 0
    assert shipper.deliver_once() is True  # the next request goes through
    assert spool.pending() < pending


def test_the_thread_replays_a_backlog_in_bulk() -> None:
    spool = MemorySpool(1 << 20)
    for seq in range(40):
        spool.append(SpooledBatch(seq, f"batch-{seq}".encode(), time.monotonic()))
    bulk = BulkServer([])
    shipper = Shipper(
        spool,
        MemoryTransport(ScriptedServer([]), bulk),
        Backoff(0.01, 0.05),
        replay_batches_per_request=8,
        replay_requests_per_second=1000.0,
    )
    shipper.start()
    left = shipper.stop(flush_timeout=30.0)
    assert left == 0
    delivered = [payload for request in bulk.requests for payload in request]
    assert delivered == [f"batch-{seq}".encode() for seq in range(40)]


# --- a thread that never dies, poison batches, refused series -----------------------------------


class CrashingSpool(MemorySpool):
    """A spool whose ``peek`` raises an unexpected error the first ``crashes`` times."""

    def __init__(self, crashes: int) -> None:
        super().__init__(1 << 20)
        self.crashes = crashes

    def peek(self) -> SpooledBatch | None:
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("injected crash in the shipper")
        return super().peek()


def test_the_thread_survives_a_crash_logs_and_counts_it(caplog: pytest.LogCaptureFixture) -> None:
    spool = CrashingSpool(crashes=2)
    delivered = threading.Event()

    def handler(payload: bytes) -> Ack:
        delivered.set()
        return Ack(status="accepted", seq=0)

    shipper = Shipper(spool, MemoryTransport(handler), Backoff(0.01, 0.05))
    shipper.start()
    try:
        spool.append(SpooledBatch(0, b"p0", time.monotonic()))
        shipper.notify()
        assert delivered.wait(5.0), "delivery stopped after the crash"
    finally:
        left = shipper.stop(flush_timeout=1.0)
    assert left == 0
    assert shipper.stats().restarts_total == 2
    crashes = [r for r in caplog.records if "injected crash" in str(r.exc_info)]
    assert crashes and crashes[0].levelname == "ERROR"


def _failing_head(status: int, head: bytes = b"batch-0"):
    """A server that fails on ``head`` every time and accepts every other batch."""
    received: list[bytes] = []

    def handler(payload: bytes) -> Ack:
        if payload == head:
            raise RetryableError(f"server answered {status}: boom", None, status)
        received.append(payload)
        return Ack(status="accepted", seq=0)

    return received, handler


def _poison_setup(handler, batches: int = 3, attempts: int = 3):
    spool = MemorySpool(1 << 20)
    for seq in range(batches):
        spool.append(SpooledBatch(seq, f"batch-{seq}".encode(), 0.0))
    clock = FakeMonotonic()
    shipper = Shipper(
        spool,
        MemoryTransport(handler),
        Backoff(1.0, 60.0, random.Random(4)),
        monotonic=clock,
        poison_attempts=attempts,
    )
    return spool, shipper


def test_a_poison_batch_is_set_aside_once_a_later_batch_goes_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received, handler = _failing_head(500)
    spool, shipper = _poison_setup(handler, attempts=3)
    for _ in range(3):
        assert shipper.deliver_once() is False
    assert received == []  # three attempts: the batch waits
    assert shipper.deliver_once() is True  # the next one goes past it, and through
    assert shipper.deliver_once() is True
    assert received == [b"batch-1", b"batch-2"]
    assert spool.pending() == 0
    stats = shipper.stats()
    assert (stats.poison_batches_total, stats.rejected_batches_total) == (1, 0)
    assert "batch 0" in caplog.text and "500" in caplog.text


def test_the_default_attempts_still_unblock_the_queue() -> None:
    received, handler = _failing_head(500)
    spool = MemorySpool(1 << 20)
    for seq in range(2):
        spool.append(SpooledBatch(seq, f"batch-{seq}".encode(), 0.0))
    shipper = Shipper(spool, MemoryTransport(handler), Backoff(1.0, 60.0, random.Random(4)))
    for _ in range(100):
        shipper.deliver_once()
    assert received == [b"batch-1"]


def test_a_server_that_fails_on_every_batch_sets_nothing_aside() -> None:
    def handler(payload: bytes) -> Ack:
        raise RetryableError("server answered 404: not found", None, 404)

    spool, shipper = _poison_setup(handler, attempts=3)
    for _ in range(20):
        assert shipper.deliver_once() is False
    assert spool.pending() == 3
    assert shipper.stats().poison_batches_total == 0


def test_a_server_that_recovers_sets_nothing_aside() -> None:
    """Failing on every batch for a while (a 500 outage), then fine: the oldest batch is
    tried again beside the later one, and both go through."""
    received: list[bytes] = []
    down = [True]

    def handler(payload: bytes) -> Ack:
        if down[0]:
            raise RetryableError("server answered 500: database away", None, 500)
        received.append(payload)
        return Ack(status="accepted", seq=0)

    spool, shipper = _poison_setup(handler, attempts=3)
    for _ in range(6):
        assert shipper.deliver_once() is False
    down[0] = False
    while shipper.deliver_once():
        pass
    assert received == [b"batch-0", b"batch-1", b"batch-2"]
    assert shipper.stats().poison_batches_total == 0
    assert spool.pending() == 0


@pytest.mark.parametrize("status", [None, 429, 503, 401, 409])
def test_answers_that_say_nothing_about_the_batch_never_set_it_aside(status: int | None) -> None:
    received, handler = _failing_head(0)

    def busy(payload: bytes) -> Ack:
        if payload == b"batch-0":
            raise RetryableError("later", None, status)
        return handler(payload)

    spool, shipper = _poison_setup(busy, attempts=2)
    for _ in range(20):
        assert shipper.deliver_once() is False
    assert received == [] and spool.pending() == 3


def test_a_lone_poison_batch_waits_for_a_later_one_to_compare() -> None:
    received, handler = _failing_head(500)
    spool, shipper = _poison_setup(handler, batches=1, attempts=2)
    for _ in range(5):
        assert shipper.deliver_once() is False
    assert spool.pending() == 1  # nothing to tell the server's fault from the batch's yet
    spool.append(SpooledBatch(1, b"batch-1", 0.0))
    assert shipper.deliver_once() is True
    assert received == [b"batch-1"] and spool.pending() == 0


def test_a_poison_batch_in_a_bulk_replay_is_set_aside_too() -> None:
    """The whole bulk request fails on it (a 500): single requests find it out."""
    _received, handler = _failing_head(500)

    def bulk(payloads: Sequence[bytes]) -> list[BulkResult]:
        if b"batch-0" in payloads:
            raise RetryableError("server answered 500: boom", None, 500)
        return [BulkResult("accepted", 0, 1) for _ in payloads]

    spool = MemorySpool(1 << 20)
    for seq in range(4):
        spool.append(SpooledBatch(seq, f"batch-{seq}".encode(), 0.0))
    shipper = Shipper(
        spool,
        MemoryTransport(handler, bulk),
        Backoff(1.0, 60.0, random.Random(4)),
        monotonic=FakeMonotonic(),
        replay_batches_per_request=8,
        poison_attempts=2,
    )
    for _ in range(10):
        shipper.deliver_once()
    assert spool.pending() == 0
    assert shipper.stats().poison_batches_total == 1


REFUSED = [RefusedSeries(metric="dcmon_job_gpu_info", series=2, reason="cardinality_limit")]


def test_refused_series_are_logged_once_per_family(caplog: pytest.LogCaptureFixture) -> None:
    answers = [REFUSED, REFUSED, [*REFUSED, RefusedSeries(metric="x_total", series=1, reason="r")]]

    def handler(payload: bytes) -> Ack:
        return Ack(status="accepted", seq=0, samples=3, refused=answers.pop(0))

    spool, shipper = _poison_setup(handler)
    while shipper.deliver_once():
        pass
    assert spool.pending() == 0
    assert shipper.stats().sent_batches_total == 3  # the batches themselves are delivered
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len([w for w in warnings if "dcmon_job_gpu_info" in w]) == 1
    assert len([w for w in warnings if "x_total" in w]) == 1
    assert "cardinality_limit" in warnings[0]


def test_refused_series_of_a_bulk_record_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    def bulk(payloads: Sequence[bytes]) -> list[BulkResult]:
        return [BulkResult("accepted", 0, 1, 200, None, None, tuple(REFUSED)) for _ in payloads]

    spool = MemorySpool(1 << 20)
    for seq in range(3):
        spool.append(SpooledBatch(seq, f"batch-{seq}".encode(), 0.0))
    shipper = Shipper(
        spool,
        MemoryTransport(lambda payload: Ack(status="accepted", seq=0), bulk),
        Backoff(1.0, 60.0),
        replay_batches_per_request=8,
    )
    assert shipper.deliver_once() is True
    assert spool.pending() == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len([w for w in warnings if "dcmon_job_gpu_info" in w]) == 1


def test_the_benchmark_order_in_a_push_answer_reaches_the_runner() -> None:
    order = BenchOrder(id="abc", level="quick", expires_at=1.0)
    answers = iter([Ack(status="accepted", seq=0), Ack(status="accepted", seq=1, bench=order)])
    spool = MemorySpool(1 << 20)
    for seq in range(2):
        spool.append(SpooledBatch(seq, b"x", 0.0))
    heard: list[BenchOrder] = []
    shipper = Shipper(
        spool, MemoryTransport(lambda payload: next(answers)), Backoff(1.0, 60.0),
        orders=heard.append,
    )  # fmt: skip
    assert shipper.deliver_once() and heard == []
    assert shipper.deliver_once() and heard == [order]


def test_the_order_in_a_bulk_answer_reaches_the_runner_and_a_failing_runner_costs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    order = BenchOrder(id="abc", expires_at=1.0)

    def bulk(payloads: Sequence[bytes]) -> list[BulkResult]:
        return [BulkResult("accepted", i, bench=order) for i, _ in enumerate(payloads)]

    def broken(heard: BenchOrder) -> None:
        raise RuntimeError("runner broke")

    spool = MemorySpool(1 << 20)
    for seq in range(3):
        spool.append(SpooledBatch(seq, b"x", 0.0))
    shipper = Shipper(
        spool, MemoryTransport(lambda p: Ack(status="accepted", seq=0), bulk), Backoff(1.0, 60.0),
        replay_batches_per_request=10, orders=broken,
    )  # fmt: skip
    with caplog.at_level(logging.ERROR):
        assert shipper.deliver_once()
    assert spool.pending() == 0  # delivered all the same
    assert "could not hand over benchmark order abc" in caplog.text
