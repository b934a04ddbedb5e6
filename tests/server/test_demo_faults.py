"""The faults scenario of ``dcmon demo`` end to end on a fake clock, and its pieces.

The whole timeline (25 simulated minutes) runs in-process: the simulated GPU node is built
from the agent's own parts (``SimulatedBackend`` with the demo's ``FaultPlan``, the GPU
collector, the events collector fed by ``SimulatedXidSource``, the batch builder), pushes every
5 s into a real server app (SQLite) that evaluates the shipped rule pack, and stays silent over
the plan's silence, as its frozen process does in the demo. Each expected alert must fire in
its window and resolve once after its fault ends, nothing else may fire, the page must list the
firing alerts, and no alert of the silent node may resolve while it is down (they are held).
The real demo (processes, webhook receiver) is run by ``tests/server/test_demo.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from agent.batch import BatchBuilder, CollectorResult
from agent.collectors.gpu import GpuCollector
from agent.collectors.gpu.backend import ClocksEventReason
from agent.collectors.gpu.faults import FaultPlan, Overheat, Silence, Xid, demo_plan
from agent.collectors.gpu.simulated import SimulatedBackend
from agent.events import EventsCollector, labels_resolver
from agent.events.model import XidEvent
from agent.events.simulated_source import SimulatedXidSource
from server.alerting.notifier import MemoryNotifier, Notification
from server.alerting.service import AlertingService
from server.app import create_app
from server.auth.secrets import sha256_hex
from server.settings import ServerSettings
from tests.factories import identity
from tests.server.conftest import TOKEN, FakeClock, push

T0 = 1_800_000_000.0  # a whole minute
NODE = "demo-gpu-node"
INTERVAL = 5.0
MINUTE = 60.0


class FaultyNode:
    """The scenario's simulated node, assembled from the agent's parts on the fake clock."""

    def __init__(self, plan: FaultPlan, clock: FakeClock) -> None:
        backend = SimulatedBackend(8, seed=1, clock=clock, faults=plan)
        self.gpu = GpuCollector(
            backend, NODE, monotonic=clock, wall_clock=clock, call_deadline_seconds=60.0
        )
        self.events = EventsCollector(
            [SimulatedXidSource(plan, clock)],
            labels_resolver(self.gpu.gpu_labels),
            NODE,
            on_fatal=self._fence,
        )
        self.builder = BatchBuilder(identity(NODE, node_id="f" * 32), INTERVAL)
        self.seq = 0

    def _fence(self, event: XidEvent) -> None:
        assert event.gpu_index is not None
        self.gpu.fence(event.gpu_index, 600.0, f"XID {event.code}")

    def push(self, client: TestClient, now: float) -> None:
        results = [
            CollectorResult("gpu", list(self.gpu.collect(now)), True, 0.0),
            CollectorResult("events", list(self.events.collect(now)), True, 0.0),
        ]
        self.seq += 1
        batch = self.builder.build(self.seq, now, results, None, events=self.events.drain_events())
        answer = push(client, batch)
        assert answer.status_code == 200, answer.text


@contextmanager
def _server(tmp_path: Path, clock: FakeClock, notifier: MemoryNotifier) -> Iterator[TestClient]:
    settings = ServerSettings(
        data_dir=tmp_path,
        ingest_token_sha256=[sha256_hex(TOKEN)],
        open_reads=True,
        rules_shipped=True,
    )
    with TestClient(create_app(settings, clock=clock, notifier=notifier)) as client:
        alerting: AlertingService = client.app.state.alerting  # type: ignore[attr-defined]
        alerting.stop()  # the test ticks the evaluator itself
        alerting.evaluator.lead()
        yield client


def _episodes(sent: list[tuple[float, Notification]], name: str) -> list[tuple[float, bool]]:
    """Returns: (time, resolved) of each change of the alert named ``name`` (re-sends of the
    same state are not changes)."""
    changes: list[tuple[float, bool]] = []
    for at, note in sent:
        if note.labels["alertname"] != name:
            continue
        if not changes or changes[-1][1] != note.resolved:
            changes.append((at, note.resolved))
    return changes


def test_the_faults_scenario_fires_and_resolves_each_alert_once(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    start = T0 + 30
    plan = demo_plan(start)
    notifier = MemoryNotifier()
    node = FaultyNode(plan, clock)
    (silence,) = plan.silences()
    page_during_heat = ""
    with _server(tmp_path, clock, notifier) as client:
        alerting: AlertingService = client.app.state.alerting  # type: ignore[attr-defined]
        t = T0
        while t <= start + 26 * MINUTE:
            clock.now = t
            if not silence[0] <= t < silence[1]:
                node.push(client, t)
            alerting.evaluator.tick(t)
            if t == start + 8 * MINUTE:
                page_during_heat = client.get("/").text
            t += INTERVAL
    sent = [(at, note) for at, batch in notifier.calls for note in batch]
    names = {note.labels["alertname"] for _, note in sent}
    assert names == {
        "GpuXidFatal",
        "GpuLost",
        "GpuThermalSlowdown",
        "GpuTemperatureHigh",
        "NodeDown",
    }, names
    for _, note in sent:
        if note.labels["alertname"] != "NodeDown":
            expected_gpu = "3" if note.labels["alertname"] in ("GpuXidFatal", "GpuLost") else "5"
            assert note.labels["gpu"] == expected_gpu, note.labels
        assert note.labels.get("instance") == NODE, note.labels

    def fired_and_resolved(name: str) -> tuple[float, float]:
        episodes = _episodes(sent, name)
        assert [resolved for _, resolved in episodes] == [False, True], (name, episodes)
        return episodes[0][0] - start, episodes[1][0] - start

    # XID 79 at +1 min: fatal at the next round; the fence makes the GPU lost for 1 min more
    xid_fired, xid_resolved = fired_and_resolved("GpuXidFatal")
    assert 1 * MINUTE < xid_fired <= 2.5 * MINUTE
    lost_fired, lost_resolved = fired_and_resolved("GpuLost")
    assert 2 * MINUTE < lost_fired <= 3.5 * MINUTE
    assert 11 * MINUTE < lost_resolved <= 12.5 * MINUTE  # the fence of 10 min lifted
    # GPU 5 hot from +1 to +9 min: slowdown after 2 min, temperature after 5 (hysteresis)
    slow_fired, slow_resolved = fired_and_resolved("GpuThermalSlowdown")
    assert 3 * MINUTE < slow_fired <= 4.5 * MINUTE
    assert 9 * MINUTE < slow_resolved <= 10.5 * MINUTE
    hot_fired, hot_resolved = fired_and_resolved("GpuTemperatureHigh")
    assert 6 * MINUTE < hot_fired <= 7.5 * MINUTE
    assert 14 * MINUTE < hot_resolved <= 20 * MINUTE  # cool for 5 min, then keep_firing_for
    # silent from +12 to +17 min: down after its staleness window and `for: 2m`, up when back
    down_fired, down_resolved = fired_and_resolved("NodeDown")
    assert 14 * MINUTE < down_fired <= 16 * MINUTE
    assert 17 * MINUTE <= down_resolved <= 18.5 * MINUTE
    # the XID alert would have ended at about +16 min, while the node was down: it is held
    # and resolves only once the node is back, like every other alert of a silent node
    assert xid_resolved >= 17 * MINUTE
    for _, resolved_at in (fired_and_resolved(n) for n in ("GpuTemperatureHigh", "GpuXidFatal")):
        assert not silence[0] - start + 30 <= resolved_at < silence[1] - start
    # the page lists the firing alerts with their summaries
    assert 'class="alerts"' in page_during_heat  # the fleet page's firing and pending alerts
    assert "GpuXidFatal" in page_during_heat and "reported fatal XID 79" in page_during_heat
    assert "GpuThermalSlowdown" in page_during_heat


def test_the_plan_heats_only_its_gpu_within_its_window() -> None:
    plan = FaultPlan(1000.0, (Overheat(2, 10.0, 20.0, 93), Xid(1, 79, 5.0), Silence(30, 40)))
    assert plan.temperature_c(2, 1009.9, 40) == 40
    assert plan.temperature_c(2, 1010.0, 40) == 93
    assert plan.temperature_c(2, 1019.9, 95) == 95  # never cooler than it would be
    assert plan.temperature_c(2, 1020.0, 40) == 40
    assert plan.temperature_c(1, 1015.0, 40) == 40
    assert plan.xids_between(1000.0, 1005.0) == [(1005.0, Xid(1, 79, 5.0))]
    assert plan.xids_between(1005.0, 1100.0) == []  # each XID once
    assert plan.silences() == [(1030.0, 1040.0)]


def test_a_hot_simulated_gpu_reads_hot_and_slowed_for_heat() -> None:
    clock = FakeClock(1000.0)
    plan = FaultPlan(1000.0, (Overheat(1, 10.0, 20.0, 93),))
    backend = SimulatedBackend(2, clock=clock, faults=plan)
    backend.init()
    clock.now = 1015.0
    assert backend.temperature_c(1) == 93
    assert backend.clocks_event_reasons(1) & ClocksEventReason.SW_THERMAL_SLOWDOWN
    assert not backend.clocks_event_reasons(1) & ClocksEventReason.GPU_IDLE
    assert backend.temperature_c(0) < 90
    assert not backend.clocks_event_reasons(0) & ClocksEventReason.SW_THERMAL_SLOWDOWN
    clock.now = 1025.0
    assert backend.temperature_c(1) < 90


def test_the_simulated_xid_source_reports_each_xid_once_and_none_from_before_it() -> None:
    clock = FakeClock(1000.0)
    plan = FaultPlan(900.0, (Xid(3, 79, 50.0), Xid(4, 13, 150.0)))  # at 950 and 1050
    source = SimulatedXidSource(plan, clock)
    assert source.poll(1000.0) == []  # the XID at 950 came before this agent started
    clock.now = 1060.0
    [observation] = source.poll(1060.0)
    assert (observation.code, observation.gpu_index, observation.time) == (13, 4, 1050.0)
    assert observation.source == "nvml"
    assert source.poll(1070.0) == []
