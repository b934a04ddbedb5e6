"""``LiveSource`` on a real app: three hours of pushed batches (inventory, GPU metrics, job
usage, an XID) become the nodes, GPUs, pods, windows, failures and activity the hint engine
reads, and the engine finds the idle job in them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent.wire.schema import Batch, GpuEvent, GpuFacts, JobGpuUsage, MetricFamily
from server.app import create_app
from server.auth.secrets import sha256_hex
from server.hints.engine import rebalance
from server.hints.hint import Kind
from server.hints.model import ClockEvent, FailureKind, Snapshot
from server.rebalancing.snapshot import LiveOptions, LiveSource
from server.settings import ServerSettings
from tests.factories import identity, inventory, make_batch
from tests.server.conftest import START, TOKEN, FakeClock, push

NODE_A = identity(name="gpu01", node_id="a" * 32)
NODE_B = identity(name="gpu02", node_id="b" * 32, labels={"rack": "r7"})
UUIDS = {
    ("gpu01", 0): "GPU-a0000000-0000-0000-0000-000000000000",
    ("gpu01", 1): "GPU-a1000000-0000-0000-0000-000000000000",
    ("gpu02", 0): "GPU-b0000000-0000-0000-0000-000000000000",
    ("gpu02", 1): "GPU-b1000000-0000-0000-0000-000000000000",
}
MODEL = "NVIDIA H100 80GB HBM3"
STEP = 60.0
HOURS = 3
NOW = START + HOURS * 3600.0
XID_AT = NOW - 600.0


def minute(t: float) -> int:
    return int((t - START) // 60)


def util_of(node: str, gpu: int, t: float) -> float:
    m = minute(t)
    if (node, gpu) == ("gpu01", 0):  # job idle-7: an hour of work, idle since
        return 85.0 if m < 60 else 0.0
    if (node, gpu) == ("gpu02", 1):  # job phases-3: three 20-minute idle gaps, then work
        return 0.0 if m in range(20, 40) or m in range(60, 80) or m in range(100, 120) else 70.0
    if (node, gpu) == ("gpu01", 1) or (node, gpu) == ("gpu02", 0):  # job gang-9
        return 80.0
    return 0.0


def gpu_labels(node: str, gpu: int) -> dict[str, str]:
    return {
        "gpu": str(gpu),
        "UUID": UUIDS[(node, gpu)],
        "pci_bus_id": f"00000000:0{gpu}:00.0",
        "device": f"nvidia{gpu}",
        "modelName": MODEL,
        "Hostname": node,
    }


def metrics(node: str, t: float) -> list[MetricFamily]:
    elapsed = t - START
    idle_rate = 1.0 if node == "gpu01" else 0.5  # gpu02's CPUs are half busy
    families = {
        "node_cpu_seconds_total": [
            ({"cpu": str(c), "mode": "idle"}, 1000.0 + idle_rate * elapsed) for c in range(2)
        ],
        "DCGM_FI_DEV_GPU_UTIL": [],
        "DCGM_FI_DEV_GPU_TEMP": [],
        "DCGM_FI_DEV_POWER_USAGE": [],
        "DCGM_FI_DEV_FB_USED": [],
        "DCGM_FI_DEV_SLOWDOWN_TEMP": [],
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": [],
        "dcmon_gpu_up": [],
        "dcmon_gpu_clocks_event_reason": [],
    }
    for gpu in (0, 1):
        labels = gpu_labels(node, gpu)
        util = util_of(node, gpu, t)
        hot = (node, gpu) == ("gpu02", 1) and t > NOW - 900.0  # the last quarter hour
        families["DCGM_FI_DEV_GPU_UTIL"].append((labels, util))
        families["DCGM_FI_DEV_GPU_TEMP"].append((labels, 88.0 if hot else 40.0 + util / 4))
        families["DCGM_FI_DEV_POWER_USAGE"].append((labels, 70.0 + 6.0 * util))
        families["DCGM_FI_DEV_FB_USED"].append((labels, 1024.0 if util else 512.0))
        families["DCGM_FI_DEV_SLOWDOWN_TEMP"].append((labels, 89.0))
        dbe = 2.0 if (node, gpu) == ("gpu01", 1) else 0.0
        families["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"].append((labels, dbe))
        families["dcmon_gpu_up"].append((labels, 1.0))
        for reason in ("sw_thermal_slowdown", "sw_power_cap"):
            held = 1.0 if hot and reason == "sw_thermal_slowdown" else 0.0
            families["dcmon_gpu_clocks_event_reason"].append(({**labels, "reason": reason}, held))
    return [MetricFamily(name=name, samples=samples) for name, samples in families.items()]


def job(node: str, gpu: int, job_id: str, since: float, t: float) -> JobGpuUsage:
    return JobGpuUsage(
        job_id=job_id,
        scheduler="slurm",
        user="svc",
        gpu_index=gpu,
        uuid=UUIDS[(node, gpu)],
        pids=[4000 + gpu],
        since=since,
        gpu_seconds=t - since,
    )


def jobs_of(node: str, t: float) -> list[JobGpuUsage]:
    if node == "gpu01":
        return [job(node, 0, "idle-7", START, t), job(node, 1, "gang-9", START, t)]
    return [job(node, 0, "gang-9", START, t), job(node, 1, "phases-3", START, t)]


def batch(node_name: str, seq: int, t: float) -> Batch:
    node = NODE_A if node_name == "gpu01" else NODE_B
    gpus = [
        GpuFacts(
            index=i,
            uuid=UUIDS[(node_name, i)],
            model=MODEL,
            pci_bus_id=f"00000000:0{i}:00.0",
            memory_total_bytes=80 << 30,
        )
        for i in (0, 1)
    ]
    base = make_batch(seq=seq, timestamp=t, node=node, metrics=metrics(node_name, t), interval=STEP)
    events: list[GpuEvent] = []
    if node_name == "gpu02" and t == XID_AT:
        events = [
            GpuEvent(
                time=t,
                source="nvml",
                code=79,
                gpu_index=1,
                uuid=UUIDS[("gpu02", 1)],
                mnemonic="GPU_HAS_FALLEN_OFF_THE_BUS",
                severity="critical",
                action="RESET_GPU",
            ),
            GpuEvent(time=t, source="kmsg", code=43, gpu_index=0, severity="info", action="IGNORE"),
        ]
    return base.model_copy(
        update={"inventory": inventory(gpus), "jobs": jobs_of(node_name, t), "events": events}
    )


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, FakeClock]]:
    """One app with three hours of both nodes' batches (built once: pushing is the slow part)."""
    clock = FakeClock(START)
    settings = ServerSettings(
        data_dir=tmp_path_factory.mktemp("live"),
        ingest_token_sha256=[sha256_hex(TOKEN)],
        open_reads=True,
    )
    app = create_app(settings, clock=clock)
    with TestClient(app) as client:
        steps = int(HOURS * 3600 / STEP)
        for k in range(steps + 1):
            t = START + k * STEP
            clock.now = t
            for name in ("gpu01", "gpu02"):
                response = push(client, batch(name, k + 1, t))
                assert response.status_code == 200, response.text
        yield app, clock


@pytest.fixture
def build(pushed: tuple[FastAPI, FakeClock]) -> Callable[..., Snapshot]:
    app, clock = pushed

    def run(now: float = NOW, **options: object) -> Snapshot:
        clock.now = now
        source = LiveSource.of(app.state.services, options=LiveOptions(**options))  # type: ignore[arg-type]
        return source.build(now)

    return run


def test_nodes_and_gpus_come_from_the_inventory(build: Callable[..., Snapshot]) -> None:
    snapshot = build()
    assert [n.name for n in snapshot.nodes] == ["gpu01", "gpu02"]
    a, b = snapshot.nodes
    assert (a.cpu_milli, a.cpu_milli_free, a.memory_mib) == (2000, 2000, 8192)
    assert b.labels == (("rack", "r7"),)
    assert a.schedulable and b.schedulable
    assert [(g.index, g.uuid, g.model, g.memory_mib) for g in a.gpus] == [
        (0, UUIDS[("gpu01", 0)], MODEL, 81920),
        (1, UUIDS[("gpu01", 1)], MODEL, 81920),
    ]
    assert all(g.free_milli == 0 for n in snapshot.nodes for g in n.gpus)  # all held by jobs
    assert all(g.slowdown_celsius == 89.0 for n in snapshot.nodes for g in n.gpus)


def test_running_jobs_are_pods_and_a_job_on_two_nodes_is_a_gang(
    build: Callable[..., Snapshot],
) -> None:
    snapshot = build()
    pods = {p.id: p for p in snapshot.pods}
    assert set(pods) == {"idle-7", "phases-3", "gang-9@gpu01", "gang-9@gpu02"}
    idle = pods["idle-7"]
    assert (idle.node, idle.gpus, idle.gang, idle.scheduler) == ("gpu01", (0,), None, "slurm")
    assert (idle.request.num_gpu, idle.request.gpu_milli, idle.request.cpu_milli) == (1, 1000, 0)
    assert idle.preemptible and idle.started_at_s == START
    assert pods["gang-9@gpu01"].gang == pods["gang-9@gpu02"].gang == "gang-9"
    assert snapshot.gang_members["gang-9"] == ("gang-9@gpu01", "gang-9@gpu02")


def test_a_job_that_stopped_reporting_is_not_placed(build: Callable[..., Snapshot]) -> None:
    later = build(NOW + 600.0)  # no batch for ten minutes: jobs finished, nodes down
    assert later.pods == ()
    assert not any(n.schedulable for n in later.nodes)
    assert all(g.free_milli == 1000 for n in later.nodes for g in n.gpus)


def test_schedulers_can_be_kept_from_moving(build: Callable[..., Snapshot]) -> None:
    snapshot = build(not_preemptible_schedulers=frozenset({"slurm"}))
    assert not any(p.preemptible for p in snapshot.pods)


def test_windows_hold_means_maxima_and_throttle_shares(build: Callable[..., Snapshot]) -> None:
    snapshot = build()
    windows = snapshot.gpu_window
    assert len(windows) == 4
    busy = windows[("gpu01", 1)]
    assert busy.window_s == 1800.0
    assert busy.util_pct == pytest.approx(80.0)
    assert busy.power_watts == pytest.approx(550.0)
    assert busy.temperature_celsius == pytest.approx(60.0)
    assert busy.memory_used_mib == pytest.approx(1024.0)
    hot = windows[("gpu02", 1)]
    assert hot.temperature_celsius == 88.0
    # 15 of the window's 30 minutes held by the thermal reason (a sample a minute)
    assert hot.clock_event_share[ClockEvent.SW_THERMAL_SLOWDOWN] == pytest.approx(0.5, abs=0.04)
    assert hot.clock_event_share[ClockEvent.SW_POWER_CAP] == 0.0
    assert windows[("gpu01", 0)].util_pct == 0.0


def test_failures_from_ecc_and_a_fatal_xid_only(build: Callable[..., Snapshot]) -> None:
    snapshot = build()
    failures = {
        (n.name, g.index): [(f.kind, f.detail) for f in g.failures]
        for n in snapshot.nodes
        for g in n.gpus
    }
    assert failures[("gpu01", 1)] == [(FailureKind.ECC_UNCORRECTABLE, "2 DBE")]
    assert failures[("gpu02", 1)] == [(FailureKind.FATAL_XID, "79 GPU_HAS_FALLEN_OFF_THE_BUS")]
    assert failures[("gpu01", 0)] == failures[("gpu02", 0)] == []  # XID 43 is info


def test_an_xid_past_the_lookback_no_longer_counts(build: Callable[..., Snapshot]) -> None:
    snapshot = build(xid_lookback_s=300.0)
    assert snapshot.node_by_name["gpu02"].gpu(1).failures == ()


def test_activity_of_an_idle_job_and_a_job_between_phases(
    build: Callable[..., Snapshot],
) -> None:
    activity = build().activity
    idle = activity["idle-7"]
    assert idle.idle_s == pytest.approx(7200.0, abs=120.0)
    assert idle.resumed_gaps_s == ()
    assert idle.gpu_util_pct == 0.0
    assert idle.cpu_util_pct == pytest.approx(0.0, abs=0.5)  # gpu01's CPUs are idle
    assert idle.duty_cycle == pytest.approx(1 / 3, abs=0.02)
    phases = activity["phases-3"]
    assert phases.idle_s == 0.0
    assert phases.resumed_gaps_s == pytest.approx((1200.0, 1200.0, 1200.0), abs=120.0)
    assert phases.cpu_util_pct == pytest.approx(50.0, abs=0.5)
    assert activity["gang-9@gpu01"].duty_cycle == pytest.approx(1.0)


def test_activity_reads_no_sample_after_the_snapshot_clock(
    build: Callable[..., Snapshot],
) -> None:
    earlier = build(NOW - 3600.0)  # the idle job has been idle an hour then
    idle = earlier.activity["idle-7"]
    assert idle.idle_s == pytest.approx(3600.0, abs=120.0)
    assert idle.running_s == pytest.approx(7200.0)
    assert idle.duty_cycle == pytest.approx(0.5, abs=0.02)
    assert earlier.node_by_name["gpu02"].gpu(1).failures == ()  # its XID comes later


def test_the_engine_finds_the_idle_job_and_the_failing_gpus(
    build: Callable[..., Snapshot],
) -> None:
    hints = rebalance(build())
    reclaim = [h for h in hints if h.kind is Kind.RECLAIM_IDLE]
    assert [h.subject.pod for h in reclaim] == ["idle-7"]  # not the job between phases
    drained = {(h.subject.node, h.subject.gpu) for h in hints if h.kind is Kind.DRAIN}
    assert drained == {("gpu01", 1), ("gpu02", 1)}
    hot = [h for h in hints if h.kind is Kind.RELIEVE_HOT]
    assert [(h.subject.node, h.subject.gpu) for h in hot] == [("gpu02", 1)]


def test_the_build_reports_its_cost(pushed: tuple[FastAPI, FakeClock]) -> None:
    app, clock = pushed
    clock.now = NOW
    source = LiveSource.of(app.state.services)
    source.build(NOW)
    assert source.last is not None
    assert (source.last.nodes, source.last.pods, source.last.queries) == (2, 4, 7)
