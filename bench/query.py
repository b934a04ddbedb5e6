"""History query latency beside VictoriaMetrics: raw 24 h, 30 days through rollups, grouping.

A fresh ``dcmon server`` (SQLite in a temporary folder) and Debian's VictoriaMetrics are loaded
with the same samples by ``bench/loadgen.py``, all stamped in the past and ending at a whole
hour at least 2 h ago (so every storage window is closed):

- (a) ``--nodes`` (default 20) full simulated 8-GPU nodes (400 series) x ``--hours`` (24) of
  10 s ticks, named node-0000, node-0001, ...;
- (b) 2 nodes of 32 series (8 GPUs x utilisation, temperature, power, energy) x ``--days``
  (30) at ``--thirty-day-interval`` seconds (default 60, so loading stays short; 10 is the
  agents' real rate), named long-0000 and long-0001; each node's history is pushed as 8
  consecutive runs side by side, every run in order.

The server compacts with a 2 s maintenance interval; ``GET /api/v1/storage`` is polled until
its head is empty (bounded by ``--compact-wait``). Then each query runs 3 times to warm up and
``--repeat`` times (default 50) measured, over one keep-alive connection: the server's own time
from its ``Server-Timing: app;dur=<ms>`` header where it sends one, and always the client's wall
time (request sent -> response read). The same questions go to VictoriaMetrics as PromQL
through ``/api/v1/query_range`` (and ``/api/v1/query``, ``/api/v1/series``, ``/api/v1/labels``),
with its response cache off (``-search.disableCache``); the ratio compares wall times.
Targets: 24 h raw p50 <= 10 ms; 30 days through rollups p50 <= 20 ms (server time).

    .venv/bin/python bench/query.py                       # 20 nodes x 24 h, 2 x 30 days
    .venv/bin/python bench/query.py --quick               # 2 nodes x 6 h, 2 x 3 days
    .venv/bin/python bench/query.py --smoke               # CI: 1 node x 1 h, 2 x 6 h; fails
                                                          # on any error or empty answer
    .venv/bin/python bench/query.py --thirty-day-interval 10 --repeat 100
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from agent_overhead import BenchError, cpu_model, peer_required, smoke_verdict
from loadgen import (
    Compacted,
    Layout,
    LoadRun,
    Plan,
    Tally,
    Target,
    dcmon_server,
    percentile,
    print_setup,
    victoria_metrics,
    victoria_metrics_version,
    wait_compacted,
)

INTERVAL_SECONDS = 10.0
WARMUP_REQUESTS = 3
TARGET_RAW_MS = 10.0
TARGET_ROLLUP_MS = 20.0
LONG_SEGMENTS = 8
SERVER_ENV = {
    "DCMON_SERVER_RAW_RETENTION_SECONDS": "3153600000",  # 100 years: keep the 30 days raw too
    "DCMON_SERVER_MAINTENANCE_INTERVAL_SECONDS": "2",
    # the server's own series are written at the present: their window never closes while
    # the load waits for an empty head, and the data must be the peer's exactly
    "DCMON_SERVER_SELF_SERIES": "false",
}
_SERVER_TIMING = re.compile(r"(?:^|,)\s*app;dur=([0-9.]+)")


@dataclass(frozen=True)
class Query:
    """One question, asked of both: dcmon's path and VictoriaMetrics' path (or None)."""

    name: str
    dcmon: str
    peer: str | None
    target_ms: float | None = None


@dataclass
class Timing:
    """What ``--repeat`` requests of one path took, and what the last one answered."""

    wall_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    status: int = 0
    error: str = ""
    series: int = 0
    points: int = 0
    tier: str = ""
    size_bytes: int = 0
    noun: str = "series"

    def shape(self) -> str:
        points = f", {self.points:,} points" if self.points else ""
        return f"{self.series:,} {self.noun}{points}, {self.size_bytes:,} bytes"

    def stat(self, values: Sequence[float], quantile: float) -> float:
        return percentile(values, quantile)


def query_set(node: str, long_node: str, end: float, hours: float, days: float) -> list[Query]:
    start_day = end - hours * 3600
    start_month = end - days * 86400

    def dcmon(path: str, **params: str | float) -> str:
        return f"{path}?{urlencode({k: _text(v) for k, v in params.items()})}"

    def vm(path: str, **params: str | float) -> str:
        return f"{path}?{urlencode({k: _text(v) for k, v in params.items()})}"

    one = f'{{instance="{node}",gpu="0"}}'
    util = "DCGM_FI_DEV_GPU_UTIL"
    energy = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
    day = {"start": start_day, "end": end}
    month = {"start": start_month, "end": end}
    return [
        Query(
            f"{hours:g} h raw, step 10 s, 1 series",
            dcmon("/api/v1/history", metric=util, instance=node, gpu="0", step="10", **day),
            vm("/api/v1/query_range", query=f"{util}{one}", step="10s", **day),
            TARGET_RAW_MS,
        ),
        Query(
            f"{days:g} d, step 1 h avg, 1 series",
            dcmon(
                "/api/v1/history",
                metric=util,
                instance=long_node,
                gpu="0",
                step="3600",
                aggregation="avg",
                **month,
            ),
            vm(
                "/api/v1/query_range",
                query=f'avg_over_time({util}{{instance="{long_node}",gpu="0"}}[1h])',
                step="1h",
                **month,
            ),
            TARGET_ROLLUP_MS,
        ),
        Query(
            f"{hours:g} h, step 5 m max, 1 series",
            dcmon(
                "/api/v1/history",
                metric=util,
                instance=node,
                gpu="0",
                step="300",
                aggregation="max",
                **day,
            ),
            vm("/api/v1/query_range", query=f"max_over_time({util}{one}[5m])", step="5m", **day),
        ),
        Query(
            f"{hours:g} h, step 5 m rate of a counter",
            dcmon(
                "/api/v1/history",
                metric=energy,
                instance=node,
                gpu="0",
                step="300",
                aggregation="rate",
                **day,
            ),
            vm("/api/v1/query_range", query=f"rate({energy}{one}[5m])", step="5m", **day),
        ),
        Query(
            f"{hours:g} h, step 5 m avg by instance, all GPUs",
            dcmon(
                "/api/v1/history",
                metric=util,
                step="300",
                aggregation="avg",
                by="instance",
                group="avg",
                **day,
            ),
            vm(
                "/api/v1/query_range",
                query=f"avg by (instance) (avg_over_time({util}[5m]))",
                step="5m",
                **day,
            ),
        ),
        Query(
            f"{hours:g} h, step 5 m avg, instance=~node-0[0-4].*",
            dcmon(
                "/api/v1/history",
                metric=util,
                match="instance=~node-0[0-4].*",
                gpu="0",
                step="300",
                aggregation="avg",
                **day,
            ),
            vm(
                "/api/v1/query_range",
                query=f'avg_over_time({util}{{instance=~"node-0[0-4].*",gpu="0"}}[5m])',
                step="5m",
                **day,
            ),
        ),
        Query(
            "latest DCGM_FI_DEV_GPU_TEMP, all nodes",
            dcmon("/api/v1/latest", metric="DCGM_FI_DEV_GPU_TEMP", stale="true"),
            vm("/api/v1/query", query="DCGM_FI_DEV_GPU_TEMP", time=end),
        ),
        Query(
            "series of DCGM_FI_DEV_GPU_UTIL",
            dcmon("/api/v1/series", metric=util),
            vm("/api/v1/series", **{"match[]": util}, **month),
        ),
        Query(
            "label names",
            "/api/v1/labels",
            vm("/api/v1/labels", **month),
        ),
    ]


def _text(value: str | float) -> str:
    return value if isinstance(value, str) else f"{value:.0f}"


# --- asking -------------------------------------------------------------------------------


def time_path(port: int, path: str, repeat: int, token: str | None = None) -> Timing:
    """GET ``path`` 3 + ``repeat`` times over one connection; the first 3 are not measured.

    ``token``: the bearer read token (dcmon closes reads to callers without one)."""
    timing = Timing()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        for attempt in range(WARMUP_REQUESTS + repeat):
            began = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            wall = (time.perf_counter() - began) * 1000
            timing.status = response.status
            if response.status != 200:
                timing.error = body[:300].decode(errors="replace")
                return timing
            if attempt < WARMUP_REQUESTS:
                continue
            timing.wall_ms.append(wall)
            header = _SERVER_TIMING.search(response.getheader("Server-Timing") or "")
            if header:
                timing.server_ms.append(float(header.group(1)))
        timing.size_bytes = len(body)
        describe_answer(json.loads(body), timing)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        timing.error = f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    return timing


def describe_answer(document: Any, timing: Timing) -> None:
    """Count the series and points of a dcmon or Prometheus-style answer."""
    if not isinstance(document, dict):
        return
    if "data" in document:  # Prometheus API (VictoriaMetrics)
        data = document["data"]
        if isinstance(data, dict):
            result = data.get("result", [])
            timing.series = len(result)
            timing.points = sum(len(item.get("values", [])) or 1 for item in result)
        elif isinstance(data, list):
            timing.series = len(data)
            if data and isinstance(data[0], str):
                timing.noun = "names"
        return
    timing.tier = str(document.get("tier", ""))
    if "names" in document:
        timing.noun = "names"
    items = document.get("series", document.get("names", []))
    if isinstance(items, list):
        timing.series = len(items)
        timing.points = sum(
            len(item.get("points", [])) if isinstance(item, dict) else 0 for item in items
        )


# --- loading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    samples: int
    seconds: float
    failures: int
    errors: tuple[str, ...]


def load(plans: list[Plan], timeout: float) -> Loaded:
    """Run the plans side by side to their ends."""
    began = time.monotonic()
    with ExitStack() as stack:
        runs = [stack.enter_context(LoadRun(plan)) for plan in plans]
        for run in runs:
            run.start()
        tallies: list[Tally] = [run.finish(timeout, progress=True) for run in runs]
    seconds = time.monotonic() - began
    return Loaded(
        samples=sum(t.samples for t in tallies),
        seconds=seconds,
        failures=sum(t.failures for t in tallies),
        errors=tuple(error for t in tallies for error in t.errors)[:5],
    )


def plans_for(target: Target, args: argparse.Namespace, end: float) -> list[Plan]:
    ticks_day = round(args.hours * 3600 / INTERVAL_SECONDS)
    ticks_month = round(args.days * 86400 / args.thirty_day_interval)
    recent = Plan(
        target,
        "flat",
        args.nodes,
        args.connections,
        args.workers,
        interval_seconds=INTERVAL_SECONDS,
        ticks=ticks_day,
        start_ms=int((end - ticks_day * INTERVAL_SECONDS) * 1000),
        prefix="node-",
    )
    long = Plan(
        target,
        "flat",
        2,
        2 * LONG_SEGMENTS,
        args.workers,
        profile="small",
        interval_seconds=args.thirty_day_interval,
        ticks=ticks_month,
        start_ms=int((end - ticks_month * args.thirty_day_interval) * 1000),
        segments=LONG_SEGMENTS,
        prefix="long-",
    )
    return [recent, long]


def describe_load(name: str, loaded: Loaded) -> None:
    print(
        f"  {name}: {loaded.samples:,} samples in {loaded.seconds:.0f} s "
        f"({loaded.samples / max(loaded.seconds, 1e-9):,.0f}/s), {loaded.failures} pushes failed",
        flush=True,
    )
    for error in loaded.errors[:3]:
        print(f"    error: {error}")


# --- report -------------------------------------------------------------------------------


def fmt_ms(value: float) -> str:
    return f"{value:.1f}" if value == value else "-"


def print_query(query: Query, ours: Timing, theirs: Timing | None) -> None:
    print(f"  {query.name}")
    if ours.error:
        print(f"    dcmon: answered {ours.status or 'nothing'}: {ours.error}")
    else:
        server = (
            f"server p50 {fmt_ms(ours.stat(ours.server_ms, 0.5))} "
            f"p90 {fmt_ms(ours.stat(ours.server_ms, 0.9))} "
            f"p99 {fmt_ms(ours.stat(ours.server_ms, 0.99))} ms; "
            if ours.server_ms
            else "no Server-Timing header; "
        )
        tier = f"tier {ours.tier}; " if ours.tier else ""
        print(
            f"    dcmon: {server}wall p50 {fmt_ms(ours.stat(ours.wall_ms, 0.5))} p90 "
            f"{fmt_ms(ours.stat(ours.wall_ms, 0.9))} p99 {fmt_ms(ours.stat(ours.wall_ms, 0.99))} "
            f"ms; {tier}{ours.shape()}"
        )
    if theirs is None:
        return
    if theirs.error:
        print(f"    VictoriaMetrics: answered {theirs.status or 'nothing'}: {theirs.error}")
        return
    print(
        f"    VictoriaMetrics: wall p50 {fmt_ms(theirs.stat(theirs.wall_ms, 0.5))} p90 "
        f"{fmt_ms(theirs.stat(theirs.wall_ms, 0.9))} p99 "
        f"{fmt_ms(theirs.stat(theirs.wall_ms, 0.99))} ms; {theirs.shape()}",
        flush=True,
    )


def summary(results: list[tuple[Query, Timing, Timing | None]]) -> None:
    print()
    print(
        f"  {'query':<44}{'tier':>5}{'server p50':>11}{'wall p50':>10}{'VM p50':>9}"
        f"{'ratio':>8}  target"
    )
    for query, ours, theirs in results:
        server = ours.stat(ours.server_ms, 0.5) if ours.server_ms else math.nan
        wall = ours.stat(ours.wall_ms, 0.5) if not ours.error else math.nan
        peer = theirs.stat(theirs.wall_ms, 0.5) if theirs and not theirs.error else math.nan
        ratio = f"{wall / peer:.2f}x" if wall == wall and peer == peer and peer else ""
        target = ""
        if query.target_ms is not None:
            judged = server if server == server else wall
            verdict = "-" if judged != judged else ("PASS" if judged <= query.target_ms else "MISS")
            target = f"<= {query.target_ms:g} ms {verdict}"
        print(
            f"  {query.name[:43]:<44}{(ours.tier or '-'):>5}{fmt_ms(server):>11}{fmt_ms(wall):>10}"
            f"{fmt_ms(peer):>9}{ratio:>8}  {target}"
        )
    print("  (times in ms; ratio = dcmon wall / VictoriaMetrics wall; targets judge server time)")


def print_storage(compacted: Compacted) -> None:
    print(f"  compaction: {compacted.describe()}")
    for name, tier in (compacted.report or {}).get("tiers", {}).items():
        entries = tier.get("entries", tier.get("samples", 0))
        print(
            f"    tier {name:>4}: {tier.get('blocks', 0):,} blocks, {entries:,} entries, "
            f"{tier.get('bytes', 0):,} bytes"
        )


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=20, help="nodes with 24 h (default 20)")
    parser.add_argument("--hours", type=float, default=24.0, help="recent history (default 24)")
    parser.add_argument("--days", type=float, default=30.0, help="long history (default 30)")
    parser.add_argument(
        "--thirty-day-interval",
        type=float,
        default=60.0,
        help="seconds between the long history's ticks (default 60; agents use 10)",
    )
    parser.add_argument("--repeat", type=int, default=50, help="measured requests per query")
    parser.add_argument("--quick", action="store_true", help="2 nodes x 6 h, 2 x 3 days")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CI: 1 node x 1 h, 2 x 6 h, same code path; exits non-zero if anything failed",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip VictoriaMetrics")
    parser.add_argument("--database-url", help="run the server on this database (PostgreSQL)")
    parser.add_argument("--connections", type=int, default=8, help="loading connections")
    parser.add_argument("--workers", type=int, default=2, help="generator processes (default 2)")
    parser.add_argument("--compact-wait", type=float, default=600.0, help="bound on compaction")
    parser.add_argument("--load-timeout", type=float, default=3600.0, help="bound on loading")
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.hours, args.days = 2, 6.0, 3.0
        args.repeat = min(args.repeat, 20)
    if args.smoke:
        args.nodes, args.hours, args.days, args.repeat = 1, 1.0, 0.25, 3
    if args.nodes < 1 or args.hours <= 0 or args.days <= 0 or args.repeat < 1:
        parser.error("--nodes and --repeat must be >= 1; --hours and --days > 0")
    peer_name = None if args.no_peer else victoria_metrics_version()
    end = (time.time() - 2 * 3600) // 3600 * 3600
    series_full = Layout.build("full", INTERVAL_SECONDS).series
    series_small = Layout.build("small", args.thirty_day_interval).series
    print(f"query benchmark on {os.cpu_count()} x {cpu_model()}")
    print_setup(
        args.database_url,
        peer_name,
        args.no_peer,
        "-search.disableCache, loaded through /api/v1/import",
    )
    print(
        f"  data, ending {time.strftime('%Y-%m-%d %H:%M', time.gmtime(end))} UTC: "
        f"{args.nodes} nodes x {series_full} series x {args.hours:g} h at 10 s; 2 nodes x "
        f"{series_small} series x {args.days:g} d at {args.thirty_day_interval:g} s"
        + (" (the agents' rate is 10 s)" if args.thirty_day_interval != INTERVAL_SECONDS else "")
    )
    print(f"  each query: {WARMUP_REQUESTS} warm-up requests, then {args.repeat} measured")
    results: list[tuple[Query, Timing, Timing | None]] = []
    loads: dict[str, Loaded] = {}
    compacted: Compacted | None = None
    queries = query_set("node-0000", "long-0000", end, args.hours, args.days)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="dcmon-bench-query-") as scratch_dir,
            ExitStack() as stack,
        ):
            scratch = Path(scratch_dir)
            server = stack.enter_context(
                dcmon_server(scratch, database_url=args.database_url, env=SERVER_ENV)
            )
            print("loading dcmon", flush=True)
            loads["dcmon"] = load(plans_for(server.target(), args, end), args.load_timeout)
            describe_load("dcmon", loads["dcmon"])
            compacted = wait_compacted(server, args.compact_wait)
            print_storage(compacted)
            vm = None
            if peer_name:
                vm = stack.enter_context(victoria_metrics(scratch))
                print("loading VictoriaMetrics", flush=True)
                peer_load = load(plans_for(vm.target(), args, end), args.load_timeout)
                loads["VictoriaMetrics"] = peer_load
                describe_load("VictoriaMetrics", peer_load)
                conn = http.client.HTTPConnection("127.0.0.1", vm.port, timeout=60)
                conn.request("GET", "/internal/force_flush")
                conn.getresponse().read()
                conn.close()
            print("querying", flush=True)
            for query in queries:
                ours = time_path(server.port, query.dcmon, args.repeat, server.read_token)
                theirs = (
                    time_path(vm.port, query.peer, args.repeat)
                    if vm is not None and query.peer is not None
                    else None
                )
                server.child.check_alive()
                results.append((query, ours, theirs))
                print_query(query, ours, theirs)
    except BenchError as exc:
        print(f"query: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("query: interrupted; servers stopped and temporary folders removed", file=sys.stderr)
        return 130
    summary(results)
    print()
    command = [".venv/bin/python", "bench/query.py"]
    if args.smoke:
        command.append("--smoke")
    elif args.quick:
        command.append("--quick")
    else:
        command += [
            "--nodes", str(args.nodes), "--hours", f"{args.hours:g}", "--days", f"{args.days:g}",
            "--thirty-day-interval", f"{args.thirty_day_interval:g}",
        ]  # fmt: skip
    command += ["--repeat", str(args.repeat)]
    if args.no_peer:
        command.append("--no-peer")
    print("reproduce: " + " ".join(command))
    if args.smoke:
        problems = smoke_problems(args, loads, compacted, results, peer_name)
        return smoke_verdict("query", problems)
    return 0


def smoke_problems(
    args: argparse.Namespace,
    loads: dict[str, Loaded],
    compacted: Compacted | None,
    results: list[tuple[Query, Timing, Timing | None]],
    peer_name: str | None,
) -> list[str]:
    """Returns: what failed in a smoke run: a refused push, compaction that did not finish,
    a query answered with an error or nothing, or a peer missing when CI requires it."""
    problems: list[str] = []
    if peer_name is None and not args.no_peer and peer_required():
        problems.append("VictoriaMetrics is missing (DCMON_REQUIRE_INTEGRATION=1)")
    for name, loaded in loads.items():
        if loaded.failures or loaded.samples == 0:
            problems.append(f"loading {name}: {loaded.failures} pushes failed {loaded.errors}")
    if compacted is None or compacted.outcome != "empty":
        problems.append(f"compaction: {compacted.describe() if compacted else 'not reached'}")
    for query, ours, theirs in results:
        history = query.dcmon.startswith("/api/v1/history")
        for name, timing in (("dcmon", ours), ("VictoriaMetrics", theirs)):
            if timing is None:
                continue
            if timing.error or timing.series == 0:
                problems.append(
                    f"{query.name}: {name} answered {timing.status or 'nothing'} with "
                    f"{timing.series} {timing.noun} {timing.error}"
                )
            elif history and not timing.points:
                problems.append(f"{query.name}: {name} answered no points")
    if len(results) != len(query_set("x", "y", 0.0, 1.0, 1.0)):
        problems.append(f"only {len(results)} queries were asked")
    return problems


if __name__ == "__main__":
    sys.exit(main())
