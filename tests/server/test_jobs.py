"""Job accounting: cumulative per-GPU counters become per-job totals that equal the hand-counted
truth through agent restarts, re-sent and out-of-order batches; the jobs API filters, breaks a
job down per GPU and tells running from finished by the server's clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent.wire.schema import Batch, JobGpuUsage
from tests.factories import identity, make_batch
from tests.server.conftest import START, FakeClock, push, row_counts
from tests.server.test_events import xid

GIB = 1 << 30
NODE_A = identity(name="gpu01", node_id="a" * 32)
NODE_B = identity(name="gpu02", node_id="b" * 32)
A0 = "GPU-a0000000-0000-0000-0000-000000000000"
A1 = "GPU-a1000000-0000-0000-0000-000000000000"
B0 = "GPU-b0000000-0000-0000-0000-000000000000"
RUN1 = START - 100.0  # node A's first counting run
RUN2 = START + 45.0  # node A's agent restarted
RUN_B = START


def usage(
    uuid: str,
    since: float,
    gpu: float,
    idle: float,
    energy: float,
    sm: float | None,
    mem_gib: int,
    *,
    job_id: str = "4242",
    scheduler: str = "slurm",
    user: str = "svc-train",
    index: int = 0,
) -> JobGpuUsage:
    return JobGpuUsage(
        job_id=job_id,
        scheduler=scheduler,  # type: ignore[arg-type]
        user=user,
        gpu_index=index,
        uuid=uuid,
        pids=[1000 + index],
        since=since,
        memory_used_bytes=mem_gib * GIB,
        sm_percent=sm,
        gpu_seconds=gpu,
        idle_seconds=idle,
        energy_joules=energy,
    )


def batch(node, seq: int, ts: float, jobs: list[JobGpuUsage], interval: float = 10.0) -> Batch:
    base = make_batch(seq=seq, timestamp=ts, node=node, interval=interval, with_inventory=False)
    return base.model_copy(update={"jobs": jobs})


def a(seq: int, offset: float, since: float, a0: tuple, a1: tuple) -> Batch:
    return batch(
        NODE_A,
        seq,
        START + offset,
        [usage(A0, since, *a0, index=0), usage(A1, since, *a1, index=1)],
    )


# Node A, GPUs A0 and A1: (gpu_seconds, idle_seconds, energy_joules, sm_percent, memory GiB).
A_BATCHES = {
    1: a(1, 0, RUN1, (10, 2, 3000, 50, 10), (10, 0, 2500, 80, 20)),
    2: a(2, 10, RUN1, (20, 2, 6000, 60, 12), (20, 5, 5000, None, 25)),
    3: a(3, 20, RUN1, (30, 2, 9000, 100, 30), (30, 5, 7500, 70, 24)),
    4: a(4, 30, RUN1, (40, 2, 12000, 90, 11), (40, 5, 10000, 70, 24)),
    5: a(5, 40, RUN1, (50, 2, 15000, 90, 11), (50, 5, 12500, 70, 24)),
    6: a(6, 50, RUN2, (5, 1, 1500, 40, 8), (5, 5, 1000, 0, 8)),
    7: a(7, 60, RUN2, (15, 1, 4500, 20, 8), (15, 15, 2000, 0, 8)),
    8: batch(NODE_A, 8, START + 70, []),
}
# Arrival: 2 is re-sent; 3 comes after 4 (same run, older values); 5 comes after the restart
# (an older run). Neither late batch may add to the counters; their readings still count for
# the peaks.
A_ARRIVAL = [1, 2, 2, 4, 3, 6, 5, 7, 8]
B_BATCHES = [
    batch(NODE_B, 1, START + 20, [usage(B0, RUN_B, 20, 0, 8000, 100, 40)]),
    batch(NODE_B, 2, START + 30, [usage(B0, RUN_B, 30, 10, 9000, 0, 40)]),
]

# Hand-counted increases, per GPU: (gpu s, idle s, energy J, sm% x s, s with sm known).
#   A0: seq1 10,2,3000,500,10  seq2 10,0,3000,600,10  seq4 20,0,6000,1800,20
#       seq6 (new run) 5,1,1500,200,5  seq7 10,0,3000,200,10       -> 55, 3, 16500, 3300, 55
#   A1: seq1 10,0,2500,800,10  seq2 10,5,2500,0,0 (sm unknown)  seq4 20,0,5000,1400,20
#       seq6 5,5,1000,0,5  seq7 10,10,1000,0,10                  -> 55, 20, 12000, 2200, 45
#   B0: seq1 20,0,8000,2000,20  seq2 10,10,1000,0,10            -> 30, 10, 9000, 2000, 30
EXPECTED_GPUS = {
    A0: dict(gpu_s=55, idle_s=3, energy=16500, avg=3300 / 55, peak_sm=100, peak_mem=30),
    A1: dict(gpu_s=55, idle_s=20, energy=12000, avg=2200 / 45, peak_sm=80, peak_mem=25),
    B0: dict(gpu_s=30, idle_s=10, energy=9000, avg=2000 / 30, peak_sm=100, peak_mem=40),
}


def push_scenario(client: TestClient, clock: FakeClock) -> None:
    clock.now = START + 75
    for seq in A_ARRIVAL:
        assert push(client, A_BATCHES[seq]).status_code == 200
    for b in B_BATCHES:
        assert push(client, b).status_code == 200


def test_job_totals_equal_the_hand_counted_truth(client: TestClient, clock: FakeClock) -> None:
    push_scenario(client, clock)
    (job,) = client.get("/api/v1/jobs").json()["jobs"]
    assert job["job_id"] == "4242"
    assert job["scheduler"] == "slurm"
    assert job["user"] == "svc-train"
    assert job["gpu_hours"] == pytest.approx(140 / 3600)
    assert job["allocated_idle_gpu_hours"] == pytest.approx(33 / 3600)
    assert job["energy_joules"] == pytest.approx(37500)
    assert job["energy_kwh"] == pytest.approx(37500 / 3.6e6)
    assert job["avg_sm_percent"] == pytest.approx(7500 / 130)
    assert job["peak_sm_percent"] == 100
    assert job["peak_memory_bytes"] == 40 * GIB
    assert job["nodes"] == ["gpu01", "gpu02"]
    assert job["gpus"] == sorted([A0, A1, B0])
    assert (job["first_seen"], job["last_seen"]) == (START, START + 60)

    detail = client.get("/api/v1/jobs/4242").json()
    assert {k: v for k, v in detail.items() if k != "per_gpu"} == job
    per_gpu = {gpu["uuid"]: gpu for gpu in detail["per_gpu"]}
    assert set(per_gpu) == set(EXPECTED_GPUS)
    for uuid, want in EXPECTED_GPUS.items():
        got = per_gpu[uuid]
        assert got["gpu_hours"] == pytest.approx(want["gpu_s"] / 3600), uuid
        assert got["allocated_idle_gpu_hours"] == pytest.approx(want["idle_s"] / 3600), uuid
        assert got["energy_joules"] == pytest.approx(want["energy"]), uuid
        assert got["avg_sm_percent"] == pytest.approx(want["avg"]), uuid
        assert got["peak_sm_percent"] == want["peak_sm"], uuid
        assert got["peak_memory_bytes"] == want["peak_mem"] * GIB, uuid
    assert (per_gpu[A1]["node"], per_gpu[A1]["gpu_index"]) == ("gpu01", 1)
    assert (per_gpu[B0]["node"], per_gpu[B0]["node_id"]) == ("gpu02", "b" * 32)
    assert (per_gpu[B0]["first_seen"], per_gpu[B0]["last_seen"]) == (START + 20, START + 30)
    assert (per_gpu[A0]["first_seen"], per_gpu[A0]["last_seen"]) == (START, START + 60)


def test_running_until_the_window_passes_then_finished(
    client: TestClient, clock: FakeClock
) -> None:
    push_scenario(client, clock)
    # Both nodes push every 10 s: the window is max(3 x 10 s, 60 s) = 60 s after last seen.
    clock.now = START + 100
    detail = client.get("/api/v1/jobs/4242").json()
    assert detail["state"] == "running"
    states = {gpu["uuid"]: gpu["state"] for gpu in detail["per_gpu"]}
    assert states == {A0: "running", A1: "running", B0: "finished"}
    clock.now = START + 60 + 60
    assert client.get("/api/v1/jobs").json()["jobs"][0]["state"] == "running"
    clock.now = START + 60 + 61
    assert client.get("/api/v1/jobs").json()["jobs"][0]["state"] == "finished"
    assert client.get("/api/v1/jobs", params={"state": "running"}).json()["jobs"] == []
    assert len(client.get("/api/v1/jobs", params={"state": "finished"}).json()["jobs"]) == 1


def test_the_window_grows_with_a_slow_push_interval(client: TestClient, clock: FakeClock) -> None:
    clock.now = START
    slow = batch(NODE_B, 1, START, [usage(B0, START, 1, 0, 1, 1, 1)], interval=40.0)
    assert push(client, slow).status_code == 200
    clock.now = START + 120  # 3 x 40 s
    assert client.get("/api/v1/jobs").json()["jobs"][0]["state"] == "running"
    clock.now = START + 121
    assert client.get("/api/v1/jobs").json()["jobs"][0]["state"] == "finished"


def _two_jobs(client: TestClient, clock: FakeClock) -> None:
    push_scenario(client, clock)
    clock.now = START + 1000
    later = batch(
        NODE_B,
        3,
        START + 1000,
        [
            usage(
                B0,
                START + 990,
                10,
                0,
                100,
                5,
                1,
                job_id="ns/pod-1",
                scheduler="kubernetes",
                user="svc-infer",
            )
        ],
    )
    assert push(client, later).status_code == 200


JOB_FILTERS = [
    pytest.param({}, ["ns/pod-1", "4242"], id="all-newest-first"),
    pytest.param({"user": "svc-train"}, ["4242"], id="user"),
    pytest.param({"user": "nobody"}, [], id="unknown-user"),
    pytest.param({"node": "gpu01"}, ["4242"], id="node-name"),
    pytest.param({"node": "b" * 32}, ["ns/pod-1", "4242"], id="node-id"),
    pytest.param({"scheduler": "kubernetes"}, ["ns/pod-1"], id="scheduler"),
    pytest.param({"state": "running"}, ["ns/pod-1"], id="running"),
    pytest.param({"state": "finished"}, ["4242"], id="finished"),
    pytest.param({"start": START + 60, "end": START + 500}, ["4242"], id="overlap-at-end"),
    pytest.param({"start": START + 61, "end": START + 999}, [], id="gap-between"),
    pytest.param({"start": START + 999}, ["ns/pod-1"], id="open-end"),
    pytest.param({"end": START}, ["4242"], id="open-start"),
    pytest.param({"limit": 1}, ["ns/pod-1"], id="limit"),
]


@pytest.mark.parametrize(("params", "ids"), JOB_FILTERS)
def test_job_filters(
    client: TestClient, clock: FakeClock, params: dict[str, object], ids: list[str]
) -> None:
    _two_jobs(client, clock)
    response = client.get("/api/v1/jobs", params=params)
    assert response.status_code == 200
    assert [job["job_id"] for job in response.json()["jobs"]] == ids


BAD_PARAMS = [
    pytest.param({"state": "paused"}, "state", id="state"),
    pytest.param({"scheduler": "pbs"}, "scheduler", id="scheduler"),
    pytest.param({"start": "soon"}, "start", id="start"),
    pytest.param({"start": START, "end": START - 1}, "end", id="end-before-start"),
    pytest.param({"limit": 0}, "limit", id="limit-zero"),
    pytest.param({"limit": 5000}, "limit", id="limit-over-max"),
]


@pytest.mark.parametrize(("params", "name"), BAD_PARAMS)
def test_bad_parameters_are_refused_naming_them(
    client: TestClient, params: dict[str, object], name: str
) -> None:
    response = client.get("/api/v1/jobs", params=params)
    assert response.status_code == 422
    assert name in response.json()["error"]["message"]


def test_unknown_job_is_404(client: TestClient, clock: FakeClock) -> None:
    push_scenario(client, clock)
    response = client.get("/api/v1/jobs/9999")
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "not_found", "message": "no job '9999'"}
    assert client.get("/api/v1/jobs/4242", params={"scheduler": "user"}).status_code == 404


def test_same_id_under_two_schedulers_needs_the_scheduler(
    client: TestClient, clock: FakeClock
) -> None:
    push_scenario(client, clock)
    other = batch(
        NODE_B, 3, START + 40, [usage(B0, START + 35, 4, 0, 10, None, 1, scheduler="container")]
    )
    assert push(client, other).status_code == 200
    response = client.get("/api/v1/jobs/4242")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "ambiguous_job"
    chosen = client.get("/api/v1/jobs/4242", params={"scheduler": "container"}).json()
    assert (chosen["scheduler"], chosen["gpu_hours"]) == ("container", pytest.approx(4 / 3600))
    assert chosen["avg_sm_percent"] is None
    assert chosen["peak_sm_percent"] is None
    assert client.get("/api/v1/jobs/4242", params={"scheduler": "pbs"}).status_code == 422


def test_job_ids_with_slashes(client: TestClient, clock: FakeClock) -> None:
    _two_jobs(client, clock)
    detail = client.get("/api/v1/jobs/ns/pod-1").json()
    assert (detail["job_id"], detail["user"], detail["state"]) == (
        "ns/pod-1",
        "svc-infer",
        "running",
    )


def test_a_batch_repeating_a_pairing_is_refused(client: TestClient, clock: FakeClock) -> None:
    clock.now = START
    twice = batch(NODE_A, 1, START, [usage(A0, RUN1, 1, 0, 1, 1, 1)] * 2)
    response = push(client, twice)
    assert response.status_code == 422
    assert "jobs.1" in response.json()["error"]["message"]
    assert client.get("/api/v1/jobs").json()["jobs"] == []
    assert client.get("/api/v1/nodes").json()["nodes"] == []


def test_a_batch_is_stored_whole_or_not_at_all(
    client: TestClient, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Samples, events and job usage commit in one transaction: if folding the jobs fails,
    nothing of the batch is kept, the agent gets no acknowledgement, and its retry stores it
    once, whole."""
    clock.now = START + 75
    first = A_BATCHES[1].model_copy(update={"events": [xid(START - 1, 79)]})
    before = row_counts(tmp_path / "dcmon.db")

    def broken(*args: object) -> None:
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr("server.ingest.service.write_usages", broken)
    failing = TestClient(client.app, raise_server_exceptions=False)
    assert push(failing, first).status_code == 500
    assert row_counts(tmp_path / "dcmon.db") == before
    monkeypatch.undo()
    assert push(client, first).json()["status"] == "accepted"
    assert push(client, first).json()["status"] == "duplicate"
    (job,) = client.get("/api/v1/jobs").json()["jobs"]
    assert job["gpu_hours"] == pytest.approx(20 / 3600)
    assert job["energy_joules"] == pytest.approx(5500)
    assert len(client.get("/api/v1/events").json()["events"]) == 1
