"""Acceptance: a hung NVML call stalls nothing; host metrics keep their cadence.

The whole daemon loop runs on the real clock with a real host collector (loadavg over a
recorded tree) and the GPU collector over a scripted node whose GPU 1 blocks for ever inside a
driver call from its second read on, as a GPU stuck in D state does.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

from agent.backoff import Backoff
from agent.batch import BatchBuilder
from agent.clock import SystemClock
from agent.collectors.base import HostPaths
from agent.collectors.gpu import GpuCollector
from agent.collectors.gpu.backend import Utilization
from agent.collectors.host import HostOptions, build_host_collectors
from agent.daemon import Agent
from agent.inventory import InventoryTracker
from agent.sequence import Sequence
from agent.shipper import Shipper
from agent.spool import MemorySpool
from agent.transport.memory import MemoryTransport
from agent.wire.codec import decode_batch
from agent.wire.schema import Ack, Batch, HostFacts
from tests.agent.test_daemon import RecordingNotifier
from tests.factories import identity
from tests.fakes.nvml import HOSTNAME, healthy_h100_node

RECORDED = Path(__file__).parent.parent / "data" / "host" / "recorded-vm"
INTERVAL = 0.25


def test_host_metrics_keep_their_cadence_while_a_gpu_call_hangs(tmp_path: Path) -> None:
    release = threading.Event()
    backend = healthy_h100_node(2)

    def utilization(call: int) -> object:
        if call >= 2:
            release.wait()
        return Utilization(10, 5)

    backend.devices[1].utilization = utilization
    gpu = GpuCollector(backend, HOSTNAME, budget_seconds=0.05, call_deadline_seconds=INTERVAL * 3)
    paths = HostPaths(RECORDED / "proc", RECORDED / "sys", RECORDED)
    host = build_host_collectors(paths, HostOptions(), {"loadavg": True})
    spool = MemorySpool(1 << 24)
    clock = SystemClock()
    shipper = Shipper(
        spool, MemoryTransport(lambda _: Ack(status="accepted", seq=0)), Backoff(1, 2)
    )
    agent = Agent(
        [*host, gpu],
        BatchBuilder(identity(), INTERVAL),
        Sequence(tmp_path),
        InventoryTracker(lambda: HostFacts(cpu_count=2), gpu.inventory, refresh_seconds=3600),
        spool,
        shipper,
        clock,
        RecordingNotifier(),
        INTERVAL,
    )
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    try:
        runner.start()
        time.sleep(INTERVAL * 12)
    finally:
        stop.set()
        runner.join(5)
        release.set()
        gpu.close()
    batches: list[Batch] = []
    while (item := spool.peek()) is not None:
        batches.append(decode_batch(item.payload, "gzip", 1 << 24))
        spool.ack(item)
    assert len(batches) >= 8, "ticks were lost while a GPU call hung"
    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(batches)]
    assert max(gaps) < INTERVAL * 4, f"a tick waited on the driver: gaps {gaps}"
    for batch in batches:
        assert "node_load1" in {family.name for family in batch.metrics}
    last = {family.name: family for family in batches[-1].metrics}
    unresponsive = {
        labels["gpu"]: value for labels, value in last["dcmon_gpu_driver_unresponsive"].samples
    }
    assert unresponsive == {"0": 0.0, "1": 1.0}
    up = {labels["gpu"]: value for labels, value in last["dcmon_gpu_up"].samples}
    assert up == {"0": 1.0, "1": 0.0}
