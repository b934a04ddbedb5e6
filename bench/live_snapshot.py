"""How long the live hint snapshot (``server.rebalancing.snapshot.LiveSource.build``) takes.

Builds a server on SQLite in a temp dir, pushes ``--nodes`` nodes of 8 GPUs each with one
running job per GPU pair, ``--points`` batches ``--interval`` seconds apart (GPU metrics, node
CPU, job usage), then times ``build`` and prints the figure with its PromQL query count.

    .venv/bin/python bench/live_snapshot.py --nodes 1000 --points 13 --interval 300
    .venv/bin/python bench/live_snapshot.py --smoke   # CI: 5 nodes; fails if the snapshot
                                                      # misses nodes, jobs or activity
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from agent.wire.codec import encode_batch
from agent.wire.schema import (
    Batch,
    GpuFacts,
    HostFacts,
    Inventory,
    JobGpuUsage,
    MetricFamily,
    NodeIdentity,
)
from server.app import create_app
from server.auth.secrets import sha256_hex
from server.hints.engine import rebalance
from server.rebalancing.snapshot import LiveSource
from server.settings import ServerSettings

TOKEN = "dcm_bench_token_0123456789"
GPUS = 8


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def batch(n: int, seq: int, t: float, t0: float, interval: float) -> Batch:
    name = f"node{n:04d}"
    uuid = [f"GPU-{n:08x}-0000-0000-0000-{g:012x}" for g in range(GPUS)]
    labels = [
        {"gpu": str(g), "UUID": uuid[g], "modelName": "NVIDIA H100 80GB HBM3", "Hostname": name}
        for g in range(GPUS)
    ]
    idle = (n % 10 == 0) and t - t0 > 600  # every tenth node's jobs went idle
    util = [0.0 if idle else 20.0 + 10 * g for g in range(GPUS)]
    families = [
        MetricFamily(
            name="node_cpu_seconds_total",
            samples=[({"cpu": str(c), "mode": "idle"}, (t - t0) * 0.8) for c in range(8)],
        ),
        MetricFamily(name="DCGM_FI_DEV_GPU_UTIL", samples=list(zip(labels, util, strict=True))),
        MetricFamily(name="DCGM_FI_DEV_GPU_TEMP", samples=[(lb, 60.0) for lb in labels]),
        MetricFamily(name="DCGM_FI_DEV_POWER_USAGE", samples=[(lb, 400.0) for lb in labels]),
        MetricFamily(name="DCGM_FI_DEV_FB_USED", samples=[(lb, 20000.0) for lb in labels]),
        MetricFamily(name="dcmon_gpu_up", samples=[(lb, 1.0) for lb in labels]),
        MetricFamily(
            name="dcmon_gpu_clocks_event_reason",
            samples=[({**lb, "reason": "sw_power_cap"}, 0.0) for lb in labels],
        ),
    ]
    jobs = [
        JobGpuUsage(
            job_id=f"{n}-{g // 2}",
            scheduler="slurm",
            gpu_index=g,
            uuid=uuid[g],
            since=t0,
            gpu_seconds=t - t0,
        )
        for g in range(GPUS)
    ]
    return Batch(
        node=NodeIdentity(node_id=f"{n:032x}", name=name, hostname=name),
        seq=seq,
        timestamp=t,
        interval_seconds=interval,
        metrics=families,
        inventory=Inventory(
            host=HostFacts(cpu_count=64, memory_total_bytes=2 << 40),
            gpus=[
                GpuFacts(index=g, uuid=uuid[g], model="NVIDIA H100 80GB HBM3") for g in range(GPUS)
            ],
        ),
        jobs=jobs,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--points", type=int, default=13)
    parser.add_argument("--interval", type=float, default=300.0)
    parser.add_argument("--smoke", action="store_true", help="5 nodes, 3 batches; check it")
    args = parser.parse_args()
    if args.smoke:
        args.nodes, args.points = 5, 3
    t0 = 1_800_000_000.0
    clock = Clock(t0)
    with tempfile.TemporaryDirectory() as data:
        settings = ServerSettings(
            data_dir=Path(data), ingest_token_sha256=[sha256_hex(TOKEN)], open_reads=True
        )
        app = create_app(settings, clock=clock)
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Authorization": f"Bearer {TOKEN}",
        }
        with TestClient(app) as client:
            began = time.perf_counter()
            for k in range(args.points):
                t = t0 + k * args.interval
                clock.now = t
                for n in range(args.nodes):
                    body = encode_batch(batch(n, k + 1, t, t0, args.interval))
                    response = client.post("/api/v1/ingest", content=body, headers=headers)
                    response.raise_for_status()
            pushed = time.perf_counter() - began
            source = LiveSource.of(app.state.services)
            figures = []
            queries = 0
            for _ in range(3):
                snapshot = source.build(clock.now)
                assert source.last is not None
                figures.append(source.last.seconds)
                queries = source.last.queries
            began = time.perf_counter()
            hints = rebalance(snapshot)
            engine_s = time.perf_counter() - began
    gpus = sum(len(node.gpus) for node in snapshot.nodes)
    print(
        f"pushed {args.nodes} nodes x {args.points} batches in {pushed:.1f} s; snapshot of"
        f" {len(snapshot.nodes)} nodes, {gpus} GPUs, {len(snapshot.pods)} pods,"
        f" {len(snapshot.telemetry.jobs)} activities: build"
        f" {min(figures):.2f} s best / {max(figures):.2f} s worst of 3"
        f" ({queries} PromQL queries); engine round {engine_s:.2f} s,"
        f" {len(hints)} hints"
    )
    if args.smoke:
        jobs = len(snapshot.telemetry.jobs)
        if len(snapshot.nodes) != args.nodes or gpus != args.nodes * GPUS or not jobs:
            raise SystemExit(
                f"live_snapshot smoke: FAILED ({len(snapshot.nodes)} nodes, {jobs} jobs)"
            )
        print("live_snapshot smoke: OK")


if __name__ == "__main__":
    main()
