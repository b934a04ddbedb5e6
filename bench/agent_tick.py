"""Agent cost per tick: CPU seconds per tick and resident memory after 100 ticks.

What runs is the real agent assembled as ``dcmon agent`` assembles it (all default collectors
on this machine's real /proc and /sys, the GPU collector on a simulated 8-GPU backend, batch
building, gzip encoding, the spool and the shipper), with the network replaced by an in-memory
transport so the figure is the agent's own work. Each run is a fresh process: it warms up with
a few ticks, then times 100 ticks back to back. The median of several runs is reported.

    .venv/bin/python bench/agent_tick.py            # 5 runs, 8 simulated GPUs
    .venv/bin/python bench/agent_tick.py --runs 9 --gpus 8 --backend nvml   # on a GPU node
    .venv/bin/python bench/agent_tick.py --smoke    # CI: 1 run of 10 ticks; fails if a tick
                                                    # failed, a collector failed or a batch
                                                    # was not delivered

At a 10 s interval, CPU % of one core = CPU seconds per tick / 10 s * 100.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent_overhead import smoke_verdict  # noqa: E402 (after the path set-up above)

from agent.config import load_settings  # noqa: E402
from agent.main import build  # noqa: E402
from agent.transport.memory import MemoryTransport  # noqa: E402
from agent.wire.schema import Ack  # noqa: E402

WARMUP_TICKS = 5
TICKS = 100


def one_run(gpus: int, backend: str, ticks: int) -> dict[str, float]:
    """Run in a fresh process: build the agent, time ``ticks`` ticks, report."""
    with tempfile.TemporaryDirectory() as state, ExitStack() as stack:
        settings = load_settings(
            None,
            {
                "state_dir": state,
                "gpu": {"backend": backend, "simulated_count": gpus},
                "log_level": "WARNING",
            },
        )
        sent: list[int] = []

        def accept(payload: bytes) -> Ack:
            sent.append(len(payload))
            return Ack(status="accepted", seq=0)

        wiring = build(settings, stack, MemoryTransport(accept))
        for _ in range(WARMUP_TICKS):
            wiring.agent.step()
            wiring.shipper.deliver_once()
        sent.clear()
        cpu_start = time.process_time()
        wall_start = time.perf_counter()
        samples = 0
        failed_collectors: set[str] = set()
        for _ in range(ticks):
            batch = wiring.agent.step()
            wiring.shipper.deliver_once()
            samples = batch.samples
            failed_collectors.update(
                c["name"] for c in batch.document["collectors"] if not c["success"]
            )
        cpu = time.process_time() - cpu_start
        wall = time.perf_counter() - wall_start
        rss_kib = next(
            int(line.split()[1])
            for line in Path("/proc/self/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        return {
            "cpu_seconds_per_tick": cpu / ticks,
            "wall_seconds_per_tick": wall / ticks,
            "rss_mib": rss_kib / 1024,
            "samples_per_tick": float(samples),
            "gzip_bytes_per_tick": statistics.median(sent) if sent else 0.0,
            "delivered_batches": float(len(sent)),
            "failed_collectors": float(len(failed_collectors)),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gpus", type=int, default=8, help="simulated GPUs (default 8)")
    parser.add_argument("--backend", choices=["simulated", "nvml", "none"], default="simulated")
    parser.add_argument("--ticks", type=int, default=TICKS, help=f"timed ticks (default {TICKS})")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CI: 1 run of 10 ticks, same code path; exits non-zero if anything failed",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.ticks = 1, 10
    if args.runs < 1 or args.ticks < 1:
        parser.error("--runs and --ticks must be >= 1")
    if args.child:
        print(json.dumps(one_run(args.gpus, args.backend, args.ticks)))
        return 0
    results = []
    for _ in range(args.runs):
        done = subprocess.run(
            [sys.executable, __file__, "--child", "--gpus", str(args.gpus),
             "--backend", args.backend, "--ticks", str(args.ticks)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            print(f"agent_tick: a run failed:\n{done.stdout}{done.stderr}", file=sys.stderr)
            return 2
        results.append(json.loads(done.stdout))

    def med(key: str) -> float:
        return statistics.median(result[key] for result in results)

    cpu = med("cpu_seconds_per_tick")
    gpus = f"{args.gpus} simulated GPUs" if args.backend == "simulated" else args.backend
    print(f"agent tick benchmark: real host + {gpus}, {args.ticks} ticks per run, {args.runs} runs")
    print(
        f"  CPU per tick         {cpu * 1000:8.2f} ms   (median; runs: "
        + ", ".join(f"{r['cpu_seconds_per_tick'] * 1000:.2f}" for r in results)
        + ")"
    )
    print(f"  wall per tick        {med('wall_seconds_per_tick') * 1000:8.2f} ms")
    print(f"  RSS after {args.ticks} ticks  {med('rss_mib'):8.1f} MiB")
    print(f"  samples per tick     {med('samples_per_tick'):8.0f}")
    print(f"  gzip bytes per tick  {med('gzip_bytes_per_tick'):8.0f}")
    print(
        f"  CPU of one core      {cpu / 10 * 100:8.3f} % at a 10 s interval, "
        f"{cpu / 1 * 100:.2f} % at 1 s"
    )
    if args.smoke:
        return smoke_verdict("agent_tick", smoke_problems(args, results))
    return 0


def smoke_problems(args: argparse.Namespace, results: list[dict[str, float]]) -> list[str]:
    """Returns: what failed in a smoke run (empty when every tick built, encoded and
    delivered a batch and every collector succeeded)."""
    problems: list[str] = []
    for number, result in enumerate(results, 1):
        if result["delivered_batches"] != args.ticks:
            problems.append(
                f"run {number}: {result['delivered_batches']:.0f} of {args.ticks} batches delivered"
            )
        if result["failed_collectors"]:
            problems.append(f"run {number}: {result['failed_collectors']:.0f} collectors failed")
        if result["samples_per_tick"] <= 0 or result["gzip_bytes_per_tick"] <= 0:
            problems.append(f"run {number}: empty batches")
    return problems


if __name__ == "__main__":
    sys.exit(main())
