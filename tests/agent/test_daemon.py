"""The daemon loop: collectors isolated from each other, fixed cadence, systemd manners."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import pytest

import agent.sequence
from agent.backoff import Backoff
from agent.batch import BatchBuilder
from agent.collectors.base import Sample
from agent.daemon import Agent
from agent.inventory import InventoryTracker
from agent.sequence import Sequence
from agent.shipper import Shipper
from agent.spool import MemorySpool
from agent.statefile import StateError
from agent.transport.memory import MemoryTransport
from agent.wire.codec import decode_batch
from agent.wire.schema import Ack, HostFacts
from tests.factories import identity


class FakeClock:
    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 1000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono


class Steady:
    name = "steady"

    def collect(self, now: float) -> Iterable[Sample]:
        return [Sample("node_load1", {}, 0.25)]


class Broken:
    name = "broken"

    def __init__(self) -> None:
        self.calls = 0

    def collect(self, now: float) -> Iterable[Sample]:
        self.calls += 1
        raise OSError("cannot read /proc/broken")


class Slow:
    """Advances the fake clock as if collection took ``seconds``."""

    name = "slow"

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds

    def collect(self, now: float) -> Iterable[Sample]:
        self.clock.mono += self.seconds
        return []


class RecordingNotifier:
    def __init__(self, watchdog_seconds: float | None = None) -> None:
        self.events: list[str] = []
        self.watchdog_seconds = watchdog_seconds

    def ready(self, status: str = "") -> None:
        self.events.append("ready")

    def watchdog(self) -> None:
        self.events.append("watchdog")

    def stopping(self) -> None:
        self.events.append("stopping")


def _agent(tmp_path, collectors, clock, notifier=None, interval=10.0):
    spool = MemorySpool(1 << 20)
    transport = MemoryTransport(lambda payload: Ack(status="accepted", seq=0))
    shipper = Shipper(spool, transport, Backoff(1, 2), monotonic=clock.monotonic)
    inventory = InventoryTracker(lambda: HostFacts(cpu_count=2), None, refresh_seconds=3600)
    agent = Agent(
        collectors,
        BatchBuilder(identity(), interval),
        Sequence(tmp_path),
        inventory,
        spool,
        shipper,
        clock,
        notifier or RecordingNotifier(),
        interval,
    )
    return agent, spool


def test_a_failing_collector_does_not_stop_the_others(tmp_path, caplog) -> None:
    clock = FakeClock()
    broken = Broken()
    agent, spool = _agent(tmp_path, [broken, Steady()], clock)
    first = agent.tick()
    second = agent.tick()
    assert [f.name for f in first.metrics] == ["node_load1"]
    status = {c.name: (c.success, c.error) for c in first.collectors}
    assert status == {
        "broken": (False, "OSError: cannot read /proc/broken"),
        "steady": (True, None),
    }
    assert caplog.text.count("collector broken failed") == 1  # not once per tick
    assert (first.seq, second.seq) == (0, 1)
    assert first.timestamp == clock.wall
    assert first.inventory is not None and second.inventory is None
    stats = spool.stats(clock.mono)
    assert stats.batches == 2
    spooled = spool.peek()
    assert spooled is not None
    assert decode_batch(spooled.payload, "gzip", 1 << 20) == first


def test_run_sends_ready_after_the_first_tick_and_stops(tmp_path) -> None:
    clock = FakeClock()
    notifier = RecordingNotifier()
    stop = threading.Event()

    class StopAfterTwo(Steady):
        calls = 0

        def collect(self, now: float) -> Iterable[Sample]:
            self.calls += 1
            if self.calls == 2:
                stop.set()
            clock.mono += 10.0  # each tick ends exactly at the next slot
            return super().collect(now)

    agent, spool = _agent(tmp_path, [StopAfterTwo()], clock, notifier)
    agent.run(stop)
    assert notifier.events[:2] == ["ready", "watchdog"]
    assert notifier.events.count("ready") == 1
    assert spool.stats(clock.mono).batches == 2


def test_slow_ticks_skip_missed_slots(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    stop = threading.Event()
    slow = Slow(clock, seconds=25.0)

    class Stopper(Steady):
        def collect(self, now: float) -> Iterable[Sample]:
            stop.set()
            return []

    agent, _ = _agent(tmp_path, [slow, Stopper()], clock, interval=10.0)
    started = clock.mono
    agent.run(stop)
    assert "skipping 2 slot(s)" in caplog.text
    assert clock.mono - started == 25.0


def test_a_state_directory_that_cannot_be_written_loses_no_tick(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path, text, mode=None) -> None:
        raise StateError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(agent.sequence, "write_atomically", full)
    clock = FakeClock()
    daemon, spool = _agent(tmp_path, [Steady()], clock)
    batches = [daemon.tick() for _ in range(3)]
    assert spool.stats(clock.mono).batches == 3
    seqs = [batch.seq for batch in batches]
    assert seqs == sorted(set(seqs))
    assert all(seq >= agent.sequence.FALLBACK_BASE for seq in seqs)  # none a restart reuses
