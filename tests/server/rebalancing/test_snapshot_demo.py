"""The demo's live hint, in process: a simulated agent node with ``simulated_jobs = "demo"``
(its real GPU, jobs and batch stages on a fake clock) pushes 45 minutes of batches into a real
app; the live snapshot then holds its two simulated jobs, and the engine asks to release the
idle one's GPUs with its evidence while the working one is left alone."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from agent.batch import BatchBuilder, CollectorResult
from agent.collectors.gpu import GpuCollector
from agent.collectors.gpu.simulated import SimulatedBackend
from agent.collectors.gpu.simulated_jobs import plan
from agent.jobs import JobsCollector
from agent.jobs.simulated import SimulatedProcFiles, simulated_user_name
from agent.wire.schema import HostFacts, Inventory
from server.app import create_app
from server.auth.secrets import sha256_hex
from server.hints.engine import rebalance
from server.hints.hint import Kind
from server.hints.policy import Policy
from server.rebalancing.snapshot import LiveOptions, LiveSource
from server.settings import ServerSettings
from tests.factories import identity
from tests.server.conftest import START, TOKEN, FakeClock, push

IDLE = "systemd:simulated-idle-notebook.service"
TRAINING = "systemd:simulated-training.service"
INTERVAL = 30.0
MINUTES = 45


def test_the_simulated_idle_job_gets_a_reclaim_hint_with_evidence(tmp_path: Path) -> None:
    clock = FakeClock(START)
    jobs = plan("demo", 8)
    backend = SimulatedBackend(8, seed=1, clock=clock, boot_time_s=START - 60, jobs=jobs)
    gpu = GpuCollector(backend, "sim01", monotonic=clock, track_processes=True)
    job_collector = JobsCollector(
        gpu.snapshots,
        "sim01",
        SimulatedProcFiles(jobs),
        user_name=simulated_user_name(),
        monotonic=clock,
    )
    builder = BatchBuilder(identity(name="sim01", node_id="5" * 32), INTERVAL)
    settings = ServerSettings(
        data_dir=tmp_path, ingest_token_sha256=[sha256_hex(TOKEN)], open_reads=True
    )
    app = create_app(settings, clock=clock)
    try:
        with TestClient(app) as client:
            for seq in range(1, int(MINUTES * 60 / INTERVAL) + 2):
                results = [
                    CollectorResult(c.name, c.collect(clock.now), True, 0.0)
                    for c in (gpu, job_collector)
                ]
                facts = gpu.inventory()
                inventory = Inventory(
                    host=HostFacts(cpu_count=32, memory_total_bytes=512 << 30),
                    gpus=list(facts.gpus),
                    driver_version=facts.driver_version,
                )
                batch = builder.build(
                    seq, clock.now, results, inventory, jobs=job_collector.usage()
                )
                assert push(client, batch).status_code == 200
                clock.now += INTERVAL
            clock.now -= INTERVAL
            # the demo's short threshold: idle 20 minutes is enough to be told
            policy = Policy(idle_threshold_s=1200.0)
            source = LiveSource(app.state.services, policy, LiveOptions(node_cpu=False))
            snapshot = source.build(clock.now)
    finally:
        gpu.close()
    pods = {p.id: p for p in snapshot.pods}
    assert set(pods) == {IDLE, TRAINING}
    assert (pods[IDLE].node, pods[IDLE].gpus) == ("sim01", (0, 1))
    assert pods[TRAINING].gpus == (2, 3)
    idle = snapshot.activity[IDLE]
    assert idle.gpu_util_pct == 0.0
    assert idle.idle_s >= 40 * 60
    hints = rebalance(snapshot, policy)
    reclaim = [h for h in hints if h.kind is Kind.RECLAIM_IDLE]
    assert [h.subject.pod for h in reclaim] == [IDLE]
    evidence = {e.series: e.value for e in reclaim[0].evidence}
    assert evidence["DCGM_FI_DEV_GPU_UTIL"] == 0.0
    assert evidence["snapshot:job_idle_s"] >= 40 * 60
    assert reclaim[0].gain.gpus_usable == 2.0
