"""The shipper sends a batch compact when it can, and in full at once when the server does not
take the compact form: only the full form is ever judged."""

from __future__ import annotations

import random
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from agent.backoff import Backoff
from agent.collectors.registry import known_collectors
from agent.compact import CompactForms
from agent.config import load_settings
from agent.main import build
from agent.shipper import Shipper
from agent.spool import MemorySpool, SpooledBatch
from agent.transport.base import RejectedError, RetryableError, TransportError
from agent.transport.memory import MemoryTransport
from agent.wire.codec import decode_batch
from agent.wire.protocol import UNKNOWN_LAYOUT
from agent.wire.schema import Ack, CompactBatch
from tests.agent.test_compact import KEY, _tick, _values

UNKNOWN = RetryableError(
    "server does not hold the layout (409 unknown_layout)", None, 409, UNKNOWN_LAYOUT
)
OLD_SERVER = RejectedError(
    "server refused the batch (422 unsupported_schema_version)", 422, "unsupported_schema_version"
)


class LayoutServer:
    """Stores what it decodes and gives ``KEY`` for every full batch; ``compact`` and ``full``
    script the next outcomes of each form (an exception to raise, or None: store)."""

    def __init__(
        self, compact: list[TransportError | None], full: list[TransportError | None] = ()
    ) -> None:
        self.compact = list(compact)
        self.full = list(full)
        self.received: list[tuple[str, int]] = []  # (form, seq) of each send, taken or not
        self.stored: dict[int, list[float]] = {}

    def __call__(self, payload: bytes) -> Ack:
        batch = decode_batch(payload, "gzip", 10**8)
        is_compact = isinstance(batch, CompactBatch)
        self.received.append(("compact" if is_compact else "full", batch.seq))
        script = self.compact if is_compact else self.full
        outcome = script.pop(0) if script else None
        if outcome is not None:
            raise outcome
        if isinstance(batch, CompactBatch):
            self.stored[batch.seq] = list(batch.values)
            return Ack(status="accepted", seq=batch.seq)
        self.stored[batch.seq] = [value for f in batch.metrics for _l, value in f.samples]
        return Ack(status="accepted", seq=batch.seq, layout=KEY)


def _setup(server: LayoutServer, **options: Any):
    spool = MemorySpool(1 << 20)
    forms = CompactForms()
    shipper = Shipper(
        spool,
        MemoryTransport(server),
        Backoff(1.0, 60.0, random.Random(4)),
        monotonic=lambda: 100.0,
        compact=forms,
        **options,
    )
    return spool, forms, shipper


def _spool_tick(spool: MemorySpool, forms: CompactForms, seq: int) -> list[float]:
    """What the daemon does each tick: spool the batch, then offer it."""
    tick = _tick(seq)
    spool.append(SpooledBatch(seq, tick.payload(), 0.0))
    forms.offer(tick)
    return _values(tick)


def test_an_ack_with_a_layout_makes_the_following_batches_compact() -> None:
    server = LayoutServer([])
    spool, forms, shipper = _setup(server)
    values = {}
    for seq in range(3):
        values[seq] = _spool_tick(spool, forms, seq)
        assert shipper.deliver_once() is True
    assert server.received == [("full", 0), ("compact", 1), ("compact", 2)]
    assert server.stored == values
    stats = shipper.stats()
    assert (stats.sent_batches_total, stats.compact_batches_total) == (3, 2)
    assert stats.compact_fallbacks_total == 0


@pytest.mark.parametrize("refusal", [UNKNOWN, OLD_SERVER], ids=["unknown_layout", "old_server"])
def test_a_compact_batch_not_taken_goes_in_full_at_once_and_is_not_set_aside(
    refusal: TransportError,
) -> None:
    server = LayoutServer([refusal])
    spool, forms, shipper = _setup(server)
    _spool_tick(spool, forms, 0)
    assert shipper.deliver_once() is True
    values = _spool_tick(spool, forms, 1)
    assert shipper.deliver_once() is True  # in the same delivery
    assert server.received == [("full", 0), ("compact", 1), ("full", 1)]
    assert server.stored[1] == values
    assert spool.pending() == 0
    stats = shipper.stats()
    assert (stats.rejected_batches_total, stats.send_failures_total) == (0, 0)
    assert (stats.compact_batches_total, stats.compact_fallbacks_total) == (0, 1)
    assert stats.consecutive_failures == 0
    # The full batch's ack gave a key again: the next batch goes compact.
    _spool_tick(spool, forms, 2)
    assert shipper.deliver_once() is True
    assert server.received[-1] == ("compact", 2)


def test_a_compact_batch_not_taken_sends_the_waiting_ones_in_full_too() -> None:
    """The server does not hold the key: the compact forms already built under it are dropped,
    not tried one by one."""
    server = LayoutServer([UNKNOWN])
    spool, forms, shipper = _setup(server)
    _spool_tick(spool, forms, 0)
    shipper.deliver_once()
    _spool_tick(spool, forms, 1)
    _spool_tick(spool, forms, 2)
    while shipper.deliver_once():
        pass
    assert server.received == [("full", 0), ("compact", 1), ("full", 1), ("full", 2)]
    assert shipper.stats().compact_fallbacks_total == 1


def test_after_a_failed_compact_send_only_the_full_form_is_judged() -> None:
    server = LayoutServer([UNKNOWN], full=[None, RetryableError("boom", None, 500)])
    spool, forms, shipper = _setup(server)
    _spool_tick(spool, forms, 0)
    assert shipper.deliver_once() is True
    _spool_tick(spool, forms, 1)
    assert shipper.deliver_once() is False  # the full form failed: kept, backed off
    stats = shipper.stats()
    assert (stats.send_failures_total, stats.consecutive_failures) == (1, 1)
    assert spool.pending() == 1
    assert shipper.deliver_once() is True  # the key is dropped: in full, not compact again
    assert server.received == [("full", 0), ("compact", 1), ("full", 1), ("full", 1)]


def test_a_full_form_refused_for_good_after_a_compact_one_is_set_aside() -> None:
    invalid = RejectedError("invalid_batch", 422, "invalid_batch")
    server = LayoutServer([UNKNOWN], full=[None, invalid])
    spool, forms, shipper = _setup(server)
    _spool_tick(spool, forms, 0)
    shipper.deliver_once()
    _spool_tick(spool, forms, 1)
    assert shipper.deliver_once() is True
    assert shipper.stats().rejected_batches_total == 1
    assert spool.pending() == 0


@pytest.mark.parametrize(
    "failure",
    [
        RetryableError("connection reset"),
        RetryableError("busy (429 overloaded)", 2.0, 429, "overloaded"),
        RetryableError("storage away (503)", 5.0, 503, "storage_unavailable"),
    ],
    ids=["network", "overloaded", "unavailable"],
)
def test_a_failure_not_about_the_form_is_the_batchs_and_it_stays_compact(
    failure: RetryableError,
) -> None:
    """No answer, or a busy or absent server, would refuse the full form the same way: no
    second request at once (a busy server is not sent twice the work), and the batch goes
    compact again on the next attempt."""
    server = LayoutServer([failure])
    spool, forms, shipper = _setup(server)
    _spool_tick(spool, forms, 0)
    shipper.deliver_once()
    _spool_tick(spool, forms, 1)
    assert shipper.deliver_once() is False
    assert server.received[-1:] == [("compact", 1)]
    assert shipper.stats().send_failures_total == 1
    assert shipper.stats().compact_fallbacks_total == 0
    assert shipper.deliver_once() is True
    assert server.received[-1:] == [("compact", 1)]
    assert 1 in server.stored


def test_a_server_error_on_a_compact_send_falls_back_to_the_full_form() -> None:
    """A 500 judges the batch: perhaps the compact path fails here, so the full form goes."""
    server = LayoutServer([RetryableError("boom (500)", None, 500, "internal")])
    spool, forms, shipper = _setup(server)
    _spool_tick(spool, forms, 0)
    shipper.deliver_once()
    _spool_tick(spool, forms, 1)
    assert shipper.deliver_once() is True
    assert server.received[-2:] == [("compact", 1), ("full", 1)]
    assert shipper.stats().send_failures_total == 0


def test_a_backlog_in_bulk_goes_in_full() -> None:
    server = LayoutServer([])
    spool, forms, shipper = _setup(server, replay_batches_per_request=8)
    _spool_tick(spool, forms, 0)
    assert shipper.deliver_once() is True
    for seq in (1, 2, 3):
        _spool_tick(spool, forms, seq)
    assert shipper.deliver_once() is True
    assert server.received[1:] == [("full", 1), ("full", 2), ("full", 3)]


def _agent_only(tmp_path: Path, **transport: object):
    others = sorted(set(known_collectors()) - {"agent"})
    return load_settings(
        None,
        {
            "state_dir": tmp_path,
            "gpu": {"backend": "none"},
            "collectors": {"disabled": others},
            "transport": transport,
        },
    )


@pytest.mark.parametrize(("enabled", "forms"), [(True, "compact"), (False, "full")])
def test_the_agent_sends_compact_batches_unless_turned_off(
    tmp_path: Path, enabled: bool, forms: str
) -> None:
    server = LayoutServer([])
    settings = _agent_only(tmp_path, compact_batches=enabled, replay_batches_per_request=1)
    with ExitStack() as stack:
        wiring = build(settings, stack, MemoryTransport(server), durable_spool=False)
        for _ in range(4):
            wiring.agent.step()
            assert wiring.shipper.deliver_once() is True
    # The first tick has no tick duration yet; the next ones share their series.
    assert [form for form, _seq in server.received[2:]] == [forms, forms]
