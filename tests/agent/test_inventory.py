"""The inventory goes out first, on change and on refresh; host files are not read every tick."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.inventory import InventoryTracker
from agent.wire.schema import GpuFacts, HostFacts


@dataclass
class Gpus:
    gpus: list[GpuFacts] = field(default_factory=list)
    driver_version: str | None = "580.159.04"
    status: str = ""


def test_sent_first_on_change_and_on_refresh_with_host_files_read_per_refresh() -> None:
    reads: list[int] = []

    def host_facts() -> HostFacts:
        reads.append(1)
        return HostFacts(cpu_count=2)

    gpus = Gpus()
    tracker = InventoryTracker(host_facts, lambda: gpus, refresh_seconds=100.0)
    assert tracker.due(0.0) is not None
    assert tracker.due(10.0) is None
    gpus.gpus = [GpuFacts(index=0, uuid="GPU-1")]  # a GPU appears: sent at once
    changed = tracker.due(20.0)
    assert changed is not None and [g.uuid for g in changed.gpus] == ["GPU-1"]
    assert tracker.due(30.0) is None
    assert tracker.due(120.0) is not None  # refresh
    assert len(reads) == 2  # at start and at the refresh, not on every tick
