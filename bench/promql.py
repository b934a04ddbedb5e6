"""PromQL latency beside Prometheus: Grafana panel queries on the same data, answers compared.

``--nodes`` simulated 8-GPU nodes (``bench/loadgen.py``, 400 series each) x ``--hours`` of
10 s ticks, ending at a whole hour at least 2 h ago, are written into a fresh dcmon database
through the server's ingest service in-process (``bench/promql_load.py``; ``--load http``:
``POST /api/v1/ingest`` instead, far slower), then a ``dcmon server`` started on it compacts
the head in its maintenance loop as in production and is waited for; the same are backfilled
into Debian's Prometheus with ``promtool tsdb create-blocks-from openmetrics``
(``bench/promql_peer.py``: same labels, values and millisecond timestamps) and imported into
VictoriaMetrics (JSON lines; timed only).
The queries are panel expressions of Grafana dashboards 1860 (Node Exporter Full; ``$node`` =
node-0000, ``job`` matchers dropped: the simulated series have no job) and 12239 (NVIDIA DCGM
exporter; ``$instance`` and ``$gpu`` = all) and a few representative GPU-fleet alert
expressions (no default alert rules exist yet), with ``$__rate_interval`` = 1m (5m for the 5 m
step), asked as an instant query at the end and as range queries at step 15 s over 1 h and at
step 5 m over 6 h (or ``--hours`` if shorter); the times sit 7 ms off the samples' grid
(``OFF_GRID_SECONDS`` says why). Every answer is first compared between dcmon and Prometheus
(same series, same timestamps, values within 1e-9 relative); then each query is asked once to
warm up and ``--repeat`` times measured, over one keep-alive connection per system, one
request at a time. Printed: p50/p99 wall ms per query and system, the ratios, dcmon's RSS, and
a summary against the target (dcmon within 1.5x of Prometheus on every query at 100 nodes).

    .venv/bin/python bench/promql.py --nodes 100 --hours 6   # the target's size (long)
    .venv/bin/python bench/promql.py --nodes 10 --hours 2 --repeat 20
    .venv/bin/python bench/promql.py --no-vm   # Prometheus only
    .venv/bin/python bench/promql.py --smoke   # CI: 2 nodes x 1 h, 3 repeats; fails on any
                                               # error, empty answer, answers that differ, or
                                               # (under CI) a missing Prometheus or VM
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from agent_overhead import (
    BenchError,
    cpu_model,
    http_get,
    memory_mib,
    peer_required,
    smoke_verdict,
)
from loadgen import (
    Plan,
    Target,
    dcmon_server,
    percentile,
    victoria_metrics,
    victoria_metrics_version,
    wait_compacted,
)
from promql_load import load_in_process
from promql_peer import backfill, differences, prometheus, prometheus_version
from query import SERVER_ENV, describe_load, load

INTERVAL_SECONDS = 10.0
TARGET_RATIO = 1.5
NODE = "node-0000"
# Evaluation times sit this far before the data's whole-hour end: off every sample's
# millisecond (phases are multiples of 10 ms below 1,000 nodes), because Prometheus 2's range
# windows are closed on the left and Prometheus 3's (dcmon's) are open, so a sample exactly on
# a window's left edge is counted by one and not the other.
OFF_GRID_SECONDS = 0.007
# (dashboard, panel title, expression) with Grafana's variables still in place.
PANELS: tuple[tuple[str, str, str], ...] = (
    ("1860", "CPU Busy",
     '100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle",instance="$node"}'
     "[$__rate_interval])))"),
    ("1860", "Sys Load",
     'scalar(node_load1{instance="$node"}) * 100 / '
     'count(count(node_cpu_seconds_total{instance="$node"}) by (cpu))'),
    ("1860", "RAM Used",
     'clamp_min((1 - (node_memory_MemAvailable_bytes{instance="$node"} / '
     'node_memory_MemTotal_bytes{instance="$node"})) * 100, 0)'),
    ("1860", "Root FS Used",
     '((node_filesystem_size_bytes{instance="$node", mountpoint="/", fstype!="rootfs"} - '
     'node_filesystem_avail_bytes{instance="$node", mountpoint="/", fstype!="rootfs"}) / '
     'node_filesystem_size_bytes{instance="$node", mountpoint="/", fstype!="rootfs"}) * 100'),
    ("1860", "CPU Basic irqs",
     'avg(sum without(mode) (rate(node_cpu_seconds_total{instance="$node", mode=~".*irq"}'
     "[$__rate_interval])))"),
    ("1860", "CPU user",
     'sum(rate(node_cpu_seconds_total{mode="user",instance="$node"}[$__rate_interval])) / '
     'scalar(count(count(node_cpu_seconds_total{instance="$node"}) by (cpu)))'),
    ("1860", "Network Traffic",
     'rate(node_network_receive_bytes_total{instance="$node"}[$__rate_interval])*8'),
    ("1860", "Disk Space Used Basic",
     "((node_filesystem_size_bytes{instance=\"$node\", device!~'rootfs'} - "
     "node_filesystem_avail_bytes{instance=\"$node\", device!~'rootfs'}) / "
     "node_filesystem_size_bytes{instance=\"$node\", device!~'rootfs'}) * 100"),
    ("1860", "Disk Throughput",
     'rate(node_disk_read_bytes_total{instance="$node",'
     'device=~"[a-z]+|nvme[0-9]+n[0-9]+|mmcblk[0-9]+"}[$__rate_interval])'),
    ("1860", "System Load", 'node_load1{instance="$node"}'),
    ("12239", "GPU Temperature", 'DCGM_FI_DEV_GPU_TEMP{instance=~"$instance", gpu=~"$gpu"}'),
    ("12239", "GPU Avg. Temp", 'avg(DCGM_FI_DEV_GPU_TEMP{instance=~"$instance", gpu=~"$gpu"})'),
    ("12239", "GPU Power Total",
     'sum(DCGM_FI_DEV_POWER_USAGE{instance=~"$instance", gpu=~"$gpu"})'),
    ("12239", "GPU SM Clocks",
     'DCGM_FI_DEV_SM_CLOCK{instance=~"$instance", gpu=~"$gpu"} * 1000000'),
    ("fleet", "energy rate by node",
     "sum by (instance) (rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[$__rate_interval]))"),
    # Representative GPU-fleet alert expressions (there are no default alert rules yet); the
    # thresholds are set so that most of them fire on the simulated data.
    ("alert", "GPU down", "dcmon_gpu_up == 0"),
    # Not "> 60": the temperatures are whole degrees, so a 5-minute mean is often exactly 60,
    # where Prometheus 2's incremental mean and Prometheus 3's (dcmon's) summed mean may differ
    # in the last bit and fall on either side.
    ("alert", "GPU hot", "avg_over_time(DCGM_FI_DEV_GPU_TEMP[5m]) > 59.95"),
    ("alert", "GPU throttled", "rate(DCGM_FI_DEV_THERMAL_VIOLATION[5m]) > 0"),
    ("alert", "GPU memory full",
     "DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > 0.5"),
    ("alert", "disk filling",
     "node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.5"),
)  # fmt: skip
# Alerts that are expected not to fire on the simulated data: an empty answer is theirs.
MAY_BE_EMPTY = frozenset({"alert GPU down"})


@dataclass(frozen=True)
class Ask:
    """One panel expression in one mode: its query string for both APIs."""

    name: str
    mode: str
    path: str  # after the API prefix: "query?..." or "query_range?..."


@dataclass
class Timing:
    wall_ms: list[float] = field(default_factory=list)
    error: str = ""
    data: dict[str, Any] | None = None

    def series(self) -> int:
        result = (self.data or {}).get("result", [])
        return len(result) if isinstance(result, list) and self.data else 0

    def empty(self) -> bool:
        if self.data is None:
            return True
        return self.data["resultType"] in ("vector", "matrix") and self.series() == 0


def asks(data_end: float, hours: float) -> list[Ask]:
    end = data_end - OFF_GRID_SECONDS
    long_hours = min(6.0, hours)
    modes = (
        ("instant", "1m", "query", {"time": end}),
        ("1h/15s", "1m", "query_range", {"start": end - 3600, "end": end, "step": 15}),
        (
            f"{long_hours:g}h/5m",
            "5m",
            "query_range",
            {"start": end - long_hours * 3600, "end": end, "step": 300},
        ),
    )
    out = []
    for dashboard, title, expr in PANELS:
        for mode, rate_interval, endpoint, params in modes:
            text = (
                expr.replace("$__rate_interval", rate_interval)
                .replace("$node", NODE)
                .replace("$instance", ".*")
                .replace("$gpu", ".*")
            )
            query = urlencode({"query": text, **{k: f"{v:.3f}" for k, v in params.items()}})
            out.append(Ask(f"{dashboard} {title}", mode, f"{endpoint}?{query}"))
    return out


def ask(port: int, prefix: str, item: Ask, repeat: int, token: str | None = None) -> Timing:
    """GET once to warm up (its answer kept for comparison), then ``repeat`` times measured."""
    timing = Timing()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        for attempt in range(1 + repeat):
            began = time.perf_counter()
            connection.request("GET", f"{prefix}/{item.path}", headers=headers)
            response = connection.getresponse()
            body = response.read()
            wall = (time.perf_counter() - began) * 1000
            if response.status != 200:
                timing.error = f"{response.status}: {body[:300].decode(errors='replace')}"
                return timing
            if attempt == 0:
                timing.data = json.loads(body)["data"]
            else:
                timing.wall_ms.append(wall)
    except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
        timing.error = f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    return timing


def fmt(value: float) -> str:
    return f"{value:.1f}" if value == value else "-"


@dataclass
class Row:
    item: Ask
    ours: Timing
    theirs: Timing | None
    mismatch: list[str]
    vm: Timing | None = None

    def timings(self) -> list[tuple[str, Timing]]:
        systems = (("dcmon", self.ours), ("Prometheus", self.theirs), ("VictoriaMetrics", self.vm))
        return [(name, timing) for name, timing in systems if timing is not None]

    def ratio(self, peer: Timing | None = None) -> float:
        """Returns: dcmon p50 / the peer's p50 (Prometheus unless ``peer``); NaN without one."""
        peer = self.theirs if peer is None else peer
        if peer is None or self.ours.error or peer.error:
            return math.nan
        return percentile(self.ours.wall_ms, 0.5) / max(percentile(peer.wall_ms, 0.5), 1e-9)


def print_row(row: Row) -> None:
    print(f"  {row.item.name} [{row.item.mode}]", flush=True)
    for name, timing in row.timings():
        if timing.error:
            print(f"    {name}: {timing.error}")
            continue
        print(
            f"    {name}: p50 {fmt(percentile(timing.wall_ms, 0.5))} p99 "
            f"{fmt(percentile(timing.wall_ms, 0.99))} ms; {timing.series()} series"
        )
    for line in row.mismatch:
        print(f"    MISMATCH {line}")


def summary(rows: list[Row], nodes: int) -> None:
    print()
    print(f"  {'query':<34}{'mode':>9}{'dcmon p50':>10}{'p99':>8}{'Prom p50':>9}{'p99':>8}"
          f"{'ratio':>8}{'VM p50':>8}{'/VM':>7}  answers")  # fmt: skip
    worst = 0.0
    for row in rows:
        theirs = row.theirs or Timing()
        ratio = row.ratio()
        worst = max(worst, ratio) if ratio == ratio else worst
        same = "-" if row.theirs is None else ("differ" if row.mismatch else "agree")
        ours_p50, ours_p99 = (fmt(percentile(row.ours.wall_ms, q)) for q in (0.5, 0.99))
        peer_p50, peer_p99 = (fmt(percentile(theirs.wall_ms, q)) for q in (0.5, 0.99))
        shown = f"{ratio:.2f}x" if ratio == ratio else ""
        vm_p50 = fmt(percentile(row.vm.wall_ms, 0.5)) if row.vm else "-"
        vm_ratio = row.ratio(row.vm) if row.vm else math.nan
        vm_shown = f"{vm_ratio:.2f}x" if vm_ratio == vm_ratio else ""
        print(
            f"  {row.item.name[:33]:<34}{row.item.mode:>9}{ours_p50:>10}{ours_p99:>8}"
            f"{peer_p50:>9}{peer_p99:>8}{shown:>8}{vm_p50:>8}{vm_shown:>7}  {same}"
        )
    agree = sum(1 for row in rows if row.theirs is not None and not row.mismatch)
    compared = sum(1 for row in rows if row.theirs is not None)
    print(
        f"  (wall ms; ratio = dcmon p50 / Prometheus p50, /VM = dcmon p50 / VictoriaMetrics p50; "
        f"{agree} of {compared} answers agree with Prometheus)"
    )
    if compared:
        verdict = "PASS" if worst <= TARGET_RATIO else "MISS"
        scale = "" if nodes == 100 else f" (judged at 100 nodes; this run has {nodes})"
        print(f"  target: every ratio <= {TARGET_RATIO}x: worst {worst:.2f}x {verdict}{scale}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100, help="simulated nodes (default 100)")
    parser.add_argument("--hours", type=float, default=6.0, help="history (default 6)")
    parser.add_argument("--repeat", type=int, default=20, help="measured requests per query")
    parser.add_argument("--smoke", action="store_true", help="CI: 2 nodes x 1 h, 3 repeats")
    parser.add_argument("--no-peer", action="store_true", help="skip Prometheus and VM")
    parser.add_argument("--no-vm", action="store_true", help="skip VictoriaMetrics")
    parser.add_argument(
        "--load", choices=("bulk", "http"), default="bulk",
        help="dcmon loading: bulk = the ingest service in-process (default), http = POSTs",
    )  # fmt: skip
    parser.add_argument("--connections", type=int, default=4, help="loading connections")
    parser.add_argument("--workers", type=int, default=2, help="generator processes (default 2)")
    parser.add_argument("--compact-wait", type=float, default=600.0, help="bound on compaction")
    parser.add_argument("--load-timeout", type=float, default=3600.0, help="bound on loading")
    args = parser.parse_args()
    if args.smoke:
        args.nodes, args.hours, args.repeat = 2, 1.0, 3
    if args.nodes < 1 or args.hours < 1 or args.repeat < 1:
        parser.error("--nodes and --repeat must be >= 1, --hours >= 1")
    peer = None if args.no_peer else prometheus_version()
    vm_name = None if args.no_peer or args.no_vm else victoria_metrics_version()
    end = (time.time() - 2 * 3600) // 3600 * 3600
    ticks = round(args.hours * 3600 / INTERVAL_SECONDS)
    print(f"PromQL benchmark on {os.cpu_count()} x {cpu_model()}")
    print(f"  peer: {peer or 'skipped (' + ('--no-peer' if args.no_peer else 'missing') + ')'}")
    print(f"  also timed: {vm_name or 'no VictoriaMetrics'}")
    print(
        f"  data, ending {time.strftime('%Y-%m-%d %H:%M', time.gmtime(end))} UTC: {args.nodes} "
        f"nodes x 400 series x {args.hours:g} h at 10 s; 1 warm-up + {args.repeat} measured"
    )
    rows: list[Row] = []
    problems: list[str] = []
    rss = (math.nan, math.nan)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="dcmon-bench-promql-") as scratch_dir,
            ExitStack() as stack,
        ):
            scratch = Path(scratch_dir)

            def plan(target: Any) -> Plan:
                start_ms = int((end - ticks * INTERVAL_SECONDS) * 1000)
                return Plan(target, "flat", args.nodes, args.connections, args.workers,
                            ticks=ticks, start_ms=start_ms)  # fmt: skip

            print(f"loading dcmon ({args.load})", flush=True)
            if args.load == "bulk":
                bulk = load_in_process(
                    plan(Target("dcmon", 0)), scratch / "dcmon", SERVER_ENV, args.workers,
                    args.load_timeout,
                )  # fmt: skip
                print(f"  dcmon: {bulk.samples:,} samples in {bulk.batches:,} batches through "
                      f"the ingest service in {bulk.seconds:.0f} s", flush=True)  # fmt: skip
                if bulk.samples == 0:
                    problems.append("loading dcmon: no samples")
            server = stack.enter_context(dcmon_server(scratch, env=SERVER_ENV))
            if args.load == "http":
                loaded = load([plan(server.target())], args.load_timeout)
                describe_load("dcmon", loaded)
                if loaded.failures or loaded.samples == 0:
                    problems.append(f"loading dcmon: {loaded.failures} pushes failed")
            compacted = wait_compacted(server, args.compact_wait)
            print(f"  compaction: {compacted.describe()}", flush=True)
            if compacted.outcome != "empty":
                problems.append(f"compaction: {compacted.describe()}")
            prom = None
            if peer:
                began = time.monotonic()
                data_dir = scratch / "prometheus"
                data_dir.mkdir()
                written = backfill(plan(server.target()), scratch, data_dir)
                print(f"  Prometheus: {written:,} samples backfilled in "
                      f"{time.monotonic() - began:.0f} s", flush=True)  # fmt: skip
                prom = stack.enter_context(prometheus(scratch, data_dir))
            vm = None
            if vm_name:
                vm = stack.enter_context(victoria_metrics(scratch))
                vm_loaded = load([plan(vm.target())], args.load_timeout)
                describe_load("VictoriaMetrics", vm_loaded)
                if vm_loaded.failures or vm_loaded.samples == 0:
                    problems.append(f"loading VictoriaMetrics: {vm_loaded.failures} pushes failed")
                http_get(vm.port, "/internal/force_flush", 60.0)
            print("querying", flush=True)
            for item in asks(end, args.hours):
                ours = ask(server.port, "/prometheus/api/v1", item, args.repeat, server.read_token)
                theirs = ask(prom.port, "/api/v1", item, args.repeat) if prom else None
                mismatch: list[str] = []
                if ours.data is not None and theirs is not None and theirs.data is not None:
                    mismatch = differences(ours.data, theirs.data)
                on_vm = ask(vm.port, "/api/v1", item, args.repeat) if vm else None
                row = Row(item, ours, theirs, mismatch, on_vm)
                rows.append(row)
                print_row(row)
                server.child.check_alive()
            rss = memory_mib(server.child.pid)
    except BenchError as exc:
        print(f"promql: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("promql: interrupted; servers stopped, temporary folders removed", file=sys.stderr)
        return 130
    summary(rows, args.nodes)
    print(f"  dcmon server RSS after the queries: {rss[0]:.0f} MiB (peak {rss[1]:.0f} MiB)")
    command = [".venv/bin/python", "bench/promql.py"]
    if args.smoke:
        command.append("--smoke")
    else:
        command += ["--nodes", str(args.nodes), "--hours", f"{args.hours:g}"]
        command += ["--repeat", str(args.repeat)]
    command += ["--no-peer"] if args.no_peer else ["--no-vm"] if args.no_vm else []
    print("reproduce: " + " ".join(command))
    if not args.smoke:
        return 0
    if peer is None and not args.no_peer and peer_required():
        problems.append("Prometheus or promtool is missing (DCMON_REQUIRE_INTEGRATION=1)")
    if vm_name is None and not (args.no_peer or args.no_vm) and peer_required():
        problems.append("VictoriaMetrics is missing (DCMON_REQUIRE_INTEGRATION=1)")
    for row in rows:
        for name, timing in row.timings():
            if timing.error or (timing.empty() and row.item.name not in MAY_BE_EMPTY):
                what = timing.error or "empty"
                problems.append(f"{row.item.name} [{row.item.mode}]: {name} answered {what}")
        if row.mismatch:
            problems.append(f"{row.item.name} [{row.item.mode}]: answers differ {row.mismatch}")
    return smoke_verdict("promql", problems)


if __name__ == "__main__":
    sys.exit(main())
