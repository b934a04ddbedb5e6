"""Server ingest beside VictoriaMetrics: samples/s, push latency, bytes/sample, /metrics.

Real processes on 127.0.0.1, fresh for every run: a ``dcmon server`` (SQLite in a temporary
folder, or ``--database-url``) and Debian's VictoriaMetrics as the peer, both fed by
``bench/loadgen.py``: simulated 8-GPU nodes of 400 series each, pushing over keep-alive HTTP
from worker processes (gzip JSON batches to dcmon, the same samples as JSON lines to
VictoriaMetrics' import API). The phases:

1. throughput: every node pushes its first batch (which creates its series; timed, not
   counted), then all push flat-out for ``--seconds`` with timestamps marching forward from
   hours ago: samples acknowledged per second (dcmon: 200 and the Ack's count), the server's
   CPU (user + system from ``/proc/<pid>/stat`` over the window, in cores), its peak RSS
   (VmHWM) and push latency (request sent -> response read);
2. paced: ``--nodes`` (and ``--paced-nodes``) nodes push their first batch (timed, not
   counted), then each pushes once per 10 s, spread evenly, stamped now, for
   ``--paced-seconds`` after one interval of warm-up: push latency p50/p99, the share of the
   scheduled pushes done, server CPU and RSS; right after the ``--nodes`` run, while every node
   is live, the median of 5 ``GET /metrics`` (wall time, size) and the server's RSS;
3. the throughput phase again into VictoriaMetrics, same generator and machine: samples/s, its
   CPU and RSS. VictoriaMetrics acknowledges before its data is durable (it buffers about a
   second in memory); dcmon acknowledges after the batch's transaction committed;
4. bytes per sample after compaction, once: ``--compact-nodes`` nodes x ``--compact-hours``
   of 10 s ticks, all older than now - 2 h (every window closed), into a fresh server with a
   2 s maintenance interval; ``GET /api/v1/storage`` is polled until the head is empty, then
   the server's bytes per entry per tier and, after it stopped, the SQLite file (dcmon.db +
   -wal) per stored sample; the same samples into a fresh VictoriaMetrics, flushed and
   force-merged, and its storage folder's size per sample.

Medians over ``--runs`` are printed with the per-run figures, then a summary against the targets
(issue 18's: flat-out ingest >= 1.0x VictoriaMetrics in the same runs; p99 push <= 50 ms at 1,000
nodes / 10 s; the first push of 1,000 new nodes <= 5 s; <= 1.5 bytes per sample in the database
file after compaction; /metrics for 1,000 nodes <= 0.2 s; server RSS <= 1 GiB). The machine is
shared by the server, the peer and the generator: the generator's own CPU is printed too.

    .venv/bin/python bench/ingest.py                      # 3 runs, 1,000 and 5,000 nodes
    .venv/bin/python bench/ingest.py --quick              # a quick look: 100 nodes, 10 s phases
    .venv/bin/python bench/ingest.py --smoke              # CI: 10 nodes, 3 s phases, fails on
                                                          # any refused push or missing peer
    .venv/bin/python bench/ingest.py --no-peer --runs 1
    .venv/bin/python bench/ingest.py --database-url postgresql+psycopg://u:p@127.0.0.1/dcmon
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent_overhead import (
    BenchError,
    cpu_model,
    cpu_seconds,
    memory_mib,
    peer_required,
    smoke_verdict,
)
from loadgen import (
    REQUEST_TIMEOUT_SECONDS,
    Compacted,
    Layout,
    LoadRun,
    Plan,
    Server,
    Tally,
    Target,
    dcmon_server,
    print_setup,
    run_plan,
    tree_bytes,
    victoria_metrics,
    victoria_metrics_version,
    wait_compacted,
)

INTERVAL_SECONDS = 10.0
TARGET_PEER_RATIO = 1.0  # flat-out samples/s over VictoriaMetrics' in the same runs
TARGET_P99_MS = 50.0
TARGET_FIRST_PUSH_SECONDS = 5.0
TARGET_BYTES_PER_SAMPLE = 1.5  # the database file after compaction
TARGET_METRICS_SECONDS = 0.2
TARGET_RSS_MIB = 1024.0
METRICS_GETS = 5
RAW_RETENTION = {"DCMON_SERVER_RAW_RETENTION_SECONDS": "3153600000"}  # 100 years: keep history
_VM_PARTS = re.compile(r'^vm_parts\{type="([^"]*)"\}$')
# The server's own health series stay out: they are written at the present, so their window
# never closes while the phase waits for an empty head, and the report counts loaded samples.
COMPACT_ENV = {
    **RAW_RETENTION,
    "DCMON_SERVER_MAINTENANCE_INTERVAL_SECONDS": "2",
    "DCMON_SERVER_SELF_SERIES": "false",
}


# --- figures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlatRun:
    """One flat-out window against one target."""

    samples_per_second: float
    cores: float
    rss_mib: float
    hwm_mib: float
    p50_ms: float
    p99_ms: float
    first_push_seconds: float
    generator_cores: float
    pushes: int
    failures: int
    errors: tuple[str, ...]
    reached_now: bool


@dataclass(frozen=True)
class MetricsRender:
    seconds: tuple[float, ...]
    size_bytes: int
    lines: int
    rss_mib: float

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)


@dataclass(frozen=True)
class PacedRun:
    nodes: int
    first_push_seconds: float
    samples_per_second: float
    p50_ms: float
    p99_ms: float
    scheduled_p99_ms: float
    late_p99_ms: float
    cores: float
    hwm_mib: float
    generator_cores: float
    pushes: int
    scheduled: int
    failures: int
    errors: tuple[str, ...]
    metrics: MetricsRender | None


@dataclass(frozen=True)
class Compaction:
    nodes: int
    hours: float
    samples: int
    load_seconds: float
    failures: int
    errors: tuple[str, ...]
    compacted: Compacted
    file_bytes: int | None
    tables: tuple[tuple[str, int, int], ...] = ()
    peer_samples: int | None = None
    peer_bytes: int | None = None
    peer_data_bytes: int | None = None
    peer_index_bytes: int | None = None
    peer_merge_note: str = ""


# --- measuring ------------------------------------------------------------------------------


def node_prefix(args: argparse.Namespace, seed: int, usual: str = "node-") -> str:
    """Returns: how node names start. A shared database (``--database-url``) keeps earlier
    phases' nodes, live for a while: there every seed gets names of its own."""
    return f"b{seed:x}-" if args.database_url else usual


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def history_start_ms(hours: float) -> int:
    """Returns: ``hours`` ago, floored to the interval, in milliseconds."""
    start = (time.time() - hours * 3600) // INTERVAL_SECONDS * INTERVAL_SECONDS
    return int(start * 1000)


def timed_plan(plan: Plan, timeout: float) -> tuple[Tally, float]:
    """Run one plan; returns: its tally and the seconds from the generators' common start to
    the last answer (their setup, building every node's batches, is not counted)."""
    with LoadRun(plan) as run:
        start_at = run.start()
        tally = run.finish(timeout)
        seconds = time.monotonic() - start_at
    return tally, seconds


def flat_run(
    target: Target, pid: int, check_alive: Callable[[], None], args: argparse.Namespace, seed: int
) -> FlatRun:
    """Every node's first batch, then flat-out for ``args.seconds`` with CPU and RSS of ``pid``."""
    base = Plan(
        target,
        "flat",
        args.nodes,
        args.connections,
        args.workers,
        interval_seconds=INTERVAL_SECONDS,
        start_ms=history_start_ms(args.history_hours),
        prefix=node_prefix(args, seed),
        seed=seed,
    )
    first, first_push_seconds = timed_plan(replace(base, ticks=1), args.load_timeout)
    check_alive()
    if first.failures:
        raise BenchError(
            f"{first.failures} of the first pushes to {target.kind} failed: "
            + "; ".join(first.errors)
        )
    # The nodes keep the layout keys their first pushes earned, as running agents do.
    measured = replace(
        base, first_tick=1, seconds=args.seconds, layouts=tuple(first.layouts.items())
    )
    with LoadRun(measured) as run:
        start_at = run.start()
        sleep_until(start_at)
        cpu_0, wall_0 = cpu_seconds(pid), time.monotonic()
        sleep_until(start_at + args.seconds)
        cpu_1, wall_1 = cpu_seconds(pid), time.monotonic()
        rss, hwm = memory_mib(pid)
        tally = run.finish(REQUEST_TIMEOUT_SECONDS + 60)
    check_alive()
    if target.kind == "dcmon" and target.compact and tally.compact < tally.accepted:
        raise BenchError(
            f"only {tally.compact} of {tally.accepted} stored flat-out pushes were compact "
            "batches: the server did not keep the nodes' layouts"
        )
    return FlatRun(
        samples_per_second=tally.samples_per_second,
        cores=(cpu_1 - cpu_0) / (wall_1 - wall_0),
        rss_mib=rss,
        hwm_mib=hwm,
        p50_ms=tally.latency_ms(0.5),
        p99_ms=tally.latency_ms(0.99),
        first_push_seconds=first_push_seconds,
        generator_cores=tally.cpu_seconds / args.seconds,
        pushes=tally.requests,
        failures=tally.failures,
        errors=tuple(tally.errors),
        reached_now=tally.reached_now,
    )


def paced_run(
    server: Server, nodes: int, args: argparse.Namespace, seed: int, render: bool
) -> PacedRun:
    # Every node's first batch creates its series: push it before the schedule starts, as a
    # fleet that is already known would have, and time it on its own.
    now_ms = round(time.time() * 1000)
    first, first_push_seconds = timed_plan(
        Plan(
            server.target(),
            "flat",
            nodes,
            args.connections,
            args.workers,
            interval_seconds=INTERVAL_SECONDS,
            ticks=1,
            start_ms=now_ms - round(2 * INTERVAL_SECONDS * 1000),
            prefix=node_prefix(args, seed),
            seed=seed,
        ),
        args.load_timeout,
    )
    if first.failures:
        raise BenchError(f"{first.failures} of the first pushes failed: " + "; ".join(first.errors))
    plan = Plan(
        server.target(),
        "paced",
        nodes,
        args.paced_connections,
        args.workers,
        interval_seconds=INTERVAL_SECONDS,
        seconds=args.paced_seconds,
        first_tick=1,
        warmup_seconds=INTERVAL_SECONDS,
        prefix=node_prefix(args, seed),
        seed=seed,
        layouts=tuple(first.layouts.items()),
    )
    pid = server.child.pid
    with LoadRun(plan) as run:
        start_at = run.start()
        sleep_until(start_at + INTERVAL_SECONDS)
        cpu_0, wall_0 = cpu_seconds(pid), time.monotonic()
        sleep_until(start_at + INTERVAL_SECONDS + args.paced_seconds)
        cpu_1, wall_1 = cpu_seconds(pid), time.monotonic()
        _rss, hwm = memory_mib(pid)
        tally = run.finish(REQUEST_TIMEOUT_SECONDS + 60)
    server.child.check_alive()
    metrics = render_metrics(server) if render else None
    return PacedRun(
        nodes=nodes,
        first_push_seconds=first_push_seconds,
        samples_per_second=tally.samples / args.paced_seconds,
        p50_ms=tally.latency_ms(0.5),
        p99_ms=tally.latency_ms(0.99),
        scheduled_p99_ms=tally.scheduled_latency_ms(0.99),
        late_p99_ms=tally.lateness_ms(0.99),
        cores=(cpu_1 - cpu_0) / (wall_1 - wall_0),
        hwm_mib=hwm,
        generator_cores=tally.cpu_seconds / (INTERVAL_SECONDS + args.paced_seconds),
        pushes=tally.requests,
        scheduled=round(nodes * args.paced_seconds / INTERVAL_SECONDS),
        failures=tally.failures,
        errors=tuple(tally.errors),
        metrics=metrics,
    )


def render_metrics(server: Server) -> MetricsRender:
    """GET /metrics ``METRICS_GETS`` times over one connection; wall time of each."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    seconds: list[float] = []
    body = b""
    try:
        for _ in range(METRICS_GETS):
            began = time.perf_counter()
            connection.request(
                "GET", "/metrics", headers={"Authorization": f"Bearer {server.read_token}"}
            )
            response = connection.getresponse()
            body = response.read()
            seconds.append(time.perf_counter() - began)
            if response.status != 200:
                raise BenchError(f"GET /metrics answered {response.status}: {body[:200]!r}")
    finally:
        connection.close()
    lines = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return MetricsRender(tuple(seconds), len(body), lines, memory_mib(server.child.pid)[0])


def vm_get(port: int, path: str, timeout: float = 120.0) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def settle_victoria_metrics(port: int, data_dir: Path, timeout: float = 300.0) -> str:
    """Flush VictoriaMetrics' in-memory buffers, force a merge, wait until no merge runs and
    its folder is still (3 polls a second apart).

    Returns:
        a note on what was done (or could not be), with its part counts at the end.
    """
    notes: list[str] = []
    status, _ = vm_get(port, "/internal/force_flush")
    notes.append("flushed" if status == 200 else f"force_flush answered {status}")
    status, _ = vm_get(port, "/internal/force_merge")
    notes.append("force-merged" if status == 200 else f"force_merge answered {status}")
    deadline = time.monotonic() + timeout
    previous, still, parts = -1, 0, ""
    while time.monotonic() < deadline:
        time.sleep(1.0)
        _, text = vm_get(port, "/metrics")
        gauges = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("vm_"))
        merging = any(
            name.startswith(("vm_active_merges", "vm_active_force_merges")) and value != "0"
            for name, value in gauges.items()
        )
        parts = ", ".join(
            f"{found.group(1)} {value}"
            for name, value in gauges.items()
            if (found := _VM_PARTS.match(name))
        )
        size = tree_bytes(data_dir)
        still = still + 1 if size == previous and not merging else 0
        previous = size
        if still >= 3:
            return ", ".join([*notes, f"parts: {parts}"])
    return ", ".join([*notes, f"still merging after {timeout:.0f} s", f"parts: {parts}"])


def sqlite_tables(db: Path, top: int = 6) -> tuple[tuple[str, int, int], ...]:
    """Returns: the largest tables and indexes of a stopped server's SQLite file: (name, bytes
    of its pages, bytes of those pages holding nothing)."""
    query = (
        "SELECT name, SUM(pgsize), SUM(unused) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT ?"
    )
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            rows = conn.execute(query, (top,)).fetchall()
    except sqlite3.Error:
        return ()  # no dbstat in this SQLite build, or no file
    return tuple((str(name), int(size), int(unused)) for name, size, unused in rows)


def compaction(args: argparse.Namespace, scratch: Path, seed: int, peer: bool) -> Compaction:
    """Closed-window history into a fresh server (and peer); bytes per sample once compacted."""
    end_s = (time.time() - 2 * 3600) // 3600 * 3600  # a whole hour, at least 2 h ago
    ticks = round(args.compact_hours * 3600 / INTERVAL_SECONDS)
    start_ms = int((end_s - ticks * INTERVAL_SECONDS) * 1000)

    def plan(target: Target) -> Plan:
        return Plan(
            target,
            "flat",
            args.compact_nodes,
            min(args.connections, args.compact_nodes),
            args.workers,
            interval_seconds=INTERVAL_SECONDS,
            ticks=ticks,
            start_ms=start_ms,
            prefix=node_prefix(args, seed, "hist-"),
            seed=seed,
        )

    series = Layout.build("full", INTERVAL_SECONDS).series
    print(
        f"  loading {args.compact_nodes} nodes x {args.compact_hours:g} h of 10 s ticks "
        f"({args.compact_nodes * ticks * series:,} samples, ending {time.time() - end_s:.0f} s "
        "ago) into a fresh dcmon server",
        flush=True,
    )
    folder = scratch / "compaction"
    with dcmon_server(folder, database_url=args.database_url, env=COMPACT_ENV) as server:
        began = time.monotonic()
        tally = run_plan(plan(server.target()), args.load_timeout, progress=True)
        load_seconds = time.monotonic() - began
        server.child.check_alive()
        print(
            f"  loaded {tally.samples:,} samples in {load_seconds:.0f} s "
            f"({tally.samples / max(load_seconds, 1e-9):,.0f}/s); waiting for compaction",
            flush=True,
        )
        compacted = wait_compacted(server, args.compact_wait)
        db = server.data_dir / "dcmon.db"
    file_bytes = None
    tables: tuple[tuple[str, int, int], ...] = ()
    if not args.database_url:
        file_bytes = sum(
            path.stat().st_size for path in (db, db.with_name("dcmon.db-wal")) if path.exists()
        )
        tables = sqlite_tables(db)
    result = Compaction(
        nodes=args.compact_nodes,
        hours=args.compact_hours,
        samples=tally.samples,
        load_seconds=load_seconds,
        failures=tally.failures,
        errors=tuple(tally.errors),
        compacted=compacted,
        file_bytes=file_bytes,
        tables=tables,
    )
    if not peer:
        return result
    print("  loading the same samples into a fresh VictoriaMetrics", flush=True)
    with victoria_metrics(folder) as vm:
        vm_tally = run_plan(plan(vm.target()), args.load_timeout, progress=True)
        note = settle_victoria_metrics(vm.port, vm.data_dir)
        return replace(
            result,
            peer_samples=vm_tally.samples,
            peer_bytes=tree_bytes(vm.data_dir),
            peer_data_bytes=tree_bytes(vm.data_dir / "data"),
            peer_index_bytes=tree_bytes(vm.data_dir / "indexdb"),
            peer_merge_note=note,
        )


# --- report ---------------------------------------------------------------------------------


def med(values: Sequence[float]) -> float:
    finite = [value for value in values if value == value]  # drop NaN
    return statistics.median(finite) if finite else float("nan")


def runs_text(values: Sequence[float], fmt: str) -> str:
    return ", ".join(format(value, fmt) for value in values)


def print_flat(label: str, number: int, run: FlatRun) -> None:
    print(
        f"  run {number} {label}: {run.samples_per_second:,.0f} samples/s, "
        f"{run.cores:.2f} cores, peak RSS {run.hwm_mib:.0f} MiB, push p50 {run.p50_ms:.1f} ms "
        f"p99 {run.p99_ms:.1f} ms ({run.pushes} pushes, {run.failures} failed); first push of "
        f"every node {run.first_push_seconds:.1f} s; generator {run.generator_cores:.2f} cores",
        flush=True,
    )
    if run.reached_now:
        print("    (some nodes reached the present: raise --history-hours)")
    for error in run.errors[:3]:
        print(f"    error: {error}")


def print_paced(number: int, run: PacedRun) -> None:
    print(
        f"  run {number} paced {run.nodes} nodes: push p50 {run.p50_ms:.1f} ms, p99 "
        f"{run.p99_ms:.1f} ms (from schedule p99 {run.scheduled_p99_ms:.1f} ms, start "
        f"lateness p99 {run.late_p99_ms:.1f} ms); {run.samples_per_second:,.0f} samples/s, "
        f"{run.cores:.2f} cores, peak RSS {run.hwm_mib:.0f} MiB ({run.pushes} of "
        f"{run.scheduled} scheduled pushes done, {run.failures} failed); generator "
        f"{run.generator_cores:.2f} cores; first push of every node before it "
        f"{run.first_push_seconds:.1f} s",
        flush=True,
    )
    if run.late_p99_ms > 1000 or run.pushes < 0.99 * run.scheduled:
        print(
            "    (the server did not keep up with the schedule: pushes started late or not at "
            "all in the window; the latencies are of the pushes that were sent)"
        )
    for error in run.errors[:3]:
        print(f"    error: {error}")
    if run.metrics:
        m = run.metrics
        print(
            f"    /metrics with {run.nodes} live nodes: median {m.median_seconds:.3f} s "
            f"(runs {runs_text(m.seconds, '.3f')}), {m.size_bytes / 1e6:.1f} MB, "
            f"{m.lines:,} sample lines; server RSS {m.rss_mib:.0f} MiB",
            flush=True,
        )


def tier_entries(tier: dict[str, Any]) -> int:
    return int(tier.get("entries", tier.get("samples", 0)) or 0)


def print_compaction(result: Compaction) -> None:
    print(
        f"  compaction: {result.samples:,} samples from {result.nodes} nodes x "
        f"{result.hours:g} h loaded in {result.load_seconds:.0f} s ({result.failures} failed)"
    )
    for error in result.errors[:3]:
        print(f"    error: {error}")
    report = result.compacted.report
    print(f"    {result.compacted.describe()}")
    if report is not None:
        for name, tier in report.get("tiers", {}).items():
            per = tier.get("bytes_per_entry", tier.get("bytes_per_sample"))
            per_text = f"{per:.3f}" if isinstance(per, int | float) else "-"
            print(
                f"    tier {name:>4}: {tier.get('blocks', 0):>8,} blocks "
                f"{tier_entries(tier):>12,} entries {tier.get('bytes', 0):>12,} bytes  "
                f"{per_text} bytes/entry"
            )
        tiers_bytes = sum(int(tier.get("bytes", 0)) for tier in report.get("tiers", {}).values())
        print(
            f"    all tiers: {tiers_bytes:,} bytes = "
            f"{tiers_bytes / max(result.samples, 1):.3f} bytes per raw sample"
        )
        if report.get("database_bytes") is not None:
            used = int(report["database_bytes"])
            print(
                f"    database in use (server's report): {used:,} bytes = "
                f"{used / max(result.samples, 1):.3f} bytes/sample"
            )
    if result.file_bytes is not None:
        print(
            f"    dcmon.db + -wal after stop: {result.file_bytes:,} bytes = "
            f"{result.file_bytes / max(result.samples, 1):.3f} bytes/sample"
        )
    if result.tables:
        print(
            "    largest in the file (MB, of which unused): "
            + ", ".join(
                f"{name} {size / 1e6:.1f} ({unused / 1e6:.1f})"
                for name, size, unused in result.tables
            )
        )
    if result.peer_bytes is not None and result.peer_samples:
        print(
            f"    VictoriaMetrics ({result.peer_merge_note}): {result.peer_bytes:,} bytes "
            f"(data {result.peer_data_bytes:,}, indexdb {result.peer_index_bytes:,}) for "
            f"{result.peer_samples:,} samples = "
            f"{result.peer_bytes / result.peer_samples:.3f} bytes/sample"
        )


def raw_bytes_per_sample(result: Compaction | None) -> float:
    if result is None or result.compacted.report is None:
        return float("nan")
    raw = result.compacted.report.get("tiers", {}).get("raw", {})
    per = raw.get("bytes_per_entry", raw.get("bytes_per_sample"))
    return float(per) if isinstance(per, int | float) else float("nan")


def verdict(value: float, target: float, higher_is_better: bool = False) -> str:
    if value != value:
        return "-"
    good = value >= target if higher_is_better else value <= target
    return "PASS" if good else "MISS"


def summary(
    args: argparse.Namespace,
    flats: list[FlatRun],
    peers: list[FlatRun],
    paced: dict[int, list[PacedRun]],
    compacted: Compaction | None,
) -> None:
    rows: list[tuple[str, float, float, str, str, str]] = []

    def row(
        label: str,
        ours: float,
        theirs: float,
        fmt: str,
        target: str = "",
        judged: str = "",
    ) -> None:
        rows.append((label, ours, theirs, fmt, target, judged))

    sps = med([r.samples_per_second for r in flats])
    peer_sps = med([r.samples_per_second for r in peers])
    row(
        "ingest flat-out, samples/s",
        sps,
        peer_sps,
        ",.0f",
        f">= {TARGET_PEER_RATIO:.1f}x",
        verdict(sps / peer_sps, TARGET_PEER_RATIO, higher_is_better=True) if peers else "",
    )
    row("  server CPU, cores", med([r.cores for r in flats]), med([r.cores for r in peers]), ".2f")
    cpu_us = med([r.cores / r.samples_per_second * 1e6 for r in flats if r.samples_per_second])
    peer_us = med([r.cores / r.samples_per_second * 1e6 for r in peers if r.samples_per_second])
    row("  server CPU per sample, us", cpu_us, peer_us, ".2f")
    row(
        "  push p99 flat-out, ms",
        med([r.p99_ms for r in flats]),
        med([r.p99_ms for r in peers]),
        ".1f",
    )
    for nodes, runs in paced.items():
        p99 = med([r.p99_ms for r in runs])
        judged = verdict(p99, TARGET_P99_MS) if nodes == args.nodes else ""
        target = "<= 50" if nodes == args.nodes else ""
        row(
            f"paced {nodes} nodes/10 s: push p50, ms",
            med([r.p50_ms for r in runs]),
            float("nan"),
            ".1f",
        )
        row(f"paced {nodes} nodes/10 s: push p99, ms", p99, float("nan"), ".1f", target, judged)
        done = med([100 * r.pushes / r.scheduled for r in runs if r.scheduled])
        row(f"paced {nodes} nodes/10 s: pushes done, %", done, float("nan"), ".0f")
        first = med([r.first_push_seconds for r in runs])
        row(
            f"first push of {nodes} new nodes, s",
            first,
            float("nan"),
            ".1f",
            "<= 5" if nodes == args.nodes else "",
            verdict(first, TARGET_FIRST_PUSH_SECONDS) if nodes == args.nodes else "",
        )
    raw = raw_bytes_per_sample(compacted)
    row(
        "bytes/sample, raw tier blocks",
        raw,
        float("nan"),
        ".3f",
    )
    if compacted is not None:
        on_disk = (
            compacted.file_bytes / compacted.samples
            if compacted.file_bytes is not None and compacted.samples
            else float("nan")
        )
        peer_disk = (
            compacted.peer_bytes / compacted.peer_samples
            if compacted.peer_bytes is not None and compacted.peer_samples
            else float("nan")
        )
        row(
            "bytes/sample, on disk",
            on_disk,
            peer_disk,
            ".3f",
            "<= 1.5",
            verdict(on_disk, TARGET_BYTES_PER_SAMPLE),
        )
    renders = [r.metrics for r in paced.get(args.nodes, []) if r.metrics]
    render_s = med([m.median_seconds for m in renders])
    row(
        f"/metrics for {args.nodes} nodes, s",
        render_s,
        float("nan"),
        ".3f",
        "<= 0.2",
        verdict(render_s, TARGET_METRICS_SECONDS),
    )
    hwm = max(
        [r.hwm_mib for r in flats]
        + [r.hwm_mib for runs in paced.values() for r in runs]
        + [m.rss_mib for m in renders],
        default=float("nan"),
    )
    peer_hwm = max([r.hwm_mib for r in peers], default=float("nan"))
    row("server peak RSS, MiB", hwm, peer_hwm, ".0f", "<= 1024", verdict(hwm, TARGET_RSS_MIB))

    print()
    print(f"  {'figure':<40}{'dcmon':>12}{'VictoriaMetrics':>17}{'ratio':>8}  {'target':<11}")
    for label, ours, theirs, fmt, target, judged in rows:
        ours_text = format(ours, fmt) if ours == ours else "-"
        theirs_text = format(theirs, fmt) if theirs == theirs else "-"
        ratio = f"{ours / theirs:.2f}x" if ours == ours and theirs == theirs and theirs else ""
        print(f"  {label:<40}{ours_text:>12}{theirs_text:>17}{ratio:>8}  {target:<11}{judged}")


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000, help="simulated nodes (default 1000)")
    parser.add_argument("--paced-nodes", type=int, default=5000, help="a second paced size")
    parser.add_argument("--seconds", type=float, default=60.0, help="flat-out window (default 60)")
    parser.add_argument("--paced-seconds", type=float, default=60.0, help="paced window")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes each (default 3)")
    parser.add_argument("--quick", action="store_true", help="quick look: 100 nodes, 10 s, 1 run")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CI: 10 nodes, 3 s phases, same code path; exits non-zero if anything failed",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip VictoriaMetrics")
    parser.add_argument("--database-url", help="run the server on this database (PostgreSQL)")
    parser.add_argument("--connections", type=int, default=8, help="flat-out connections")
    parser.add_argument("--paced-connections", type=int, default=64, help="paced connections")
    parser.add_argument("--workers", type=int, default=2, help="generator processes (default 2)")
    parser.add_argument("--history-hours", type=float, default=6.0, help="flat-out starts there")
    parser.add_argument("--compact-nodes", type=int, default=50)
    parser.add_argument("--compact-hours", type=float, default=3.0)
    parser.add_argument("--compact-wait", type=float, default=600.0, help="bound on compaction")
    parser.add_argument("--no-compaction", action="store_true", help="skip phase 4")
    parser.add_argument("--load-timeout", type=float, default=1800.0, help="bound on a load")
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.seconds, args.paced_seconds, args.runs = 100, 10.0, 10.0, 1
        args.compact_nodes, args.compact_hours, args.compact_wait = 5, 1.0, 120.0
    if args.smoke:
        args.nodes, args.seconds, args.paced_seconds, args.runs = 10, 3.0, 3.0, 1
        args.compact_nodes, args.compact_hours, args.compact_wait = 2, 0.5, 120.0
        args.history_hours = 1.0
    if args.runs < 1 or args.nodes < 1 or args.seconds <= 0 or args.paced_seconds <= 0:
        parser.error("--runs and --nodes must be >= 1, --seconds and --paced-seconds > 0")
    one_size = args.quick or args.smoke
    paced_sizes = [args.nodes] if one_size else sorted({args.nodes, args.paced_nodes})
    seed_base = secrets.randbelow(1 << 30) if args.database_url else 1
    peer_name = None if args.no_peer else victoria_metrics_version()
    series = Layout.build("full", INTERVAL_SECONDS).series

    print(f"ingest benchmark on {os.cpu_count()} x {cpu_model()}")
    print_setup(
        args.database_url, peer_name, args.no_peer, "-retentionPeriod=100y, JSON line import"
    )
    print(
        f"  {args.nodes} nodes x {series} series, 10 s interval; flat-out {args.seconds:g} s over "
        f"{args.connections} connections; paced {', '.join(map(str, paced_sizes))} nodes for "
        f"{args.paced_seconds:g} s after 10 s warm-up over up to {args.paced_connections} "
        f"connections; {args.runs} run(s), fresh processes each; {args.workers} generator "
        "processes"
    )
    print(
        "  note: VictoriaMetrics acknowledges before its data is durable (it buffers ~1 s); "
        "dcmon acknowledges after its commit"
    )
    flats: list[FlatRun] = []
    peers: list[FlatRun] = []
    paced: dict[int, list[PacedRun]] = {size: [] for size in paced_sizes}
    compacted: Compaction | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="dcmon-bench-ingest-") as scratch_dir:
            scratch = Path(scratch_dir)
            for number in range(1, args.runs + 1):
                seed = seed_base + number
                run_dir = scratch / f"run{number}"
                with dcmon_server(
                    run_dir / "flat", database_url=args.database_url, env=RAW_RETENTION
                ) as server:
                    flat = flat_run(
                        server.target(), server.child.pid, server.child.check_alive, args, seed
                    )
                flats.append(flat)
                print_flat("dcmon flat-out", number, flat)
                for size in paced_sizes:
                    with dcmon_server(
                        run_dir / f"paced{size}", database_url=args.database_url, env=RAW_RETENTION
                    ) as server:
                        result = paced_run(
                            server, size, args, seed + 1000 * size, size == args.nodes
                        )
                    paced[size].append(result)
                    print_paced(number, result)
                if peer_name:
                    with victoria_metrics(run_dir / "vm") as vm:
                        peer = flat_run(vm.target(), vm.child.pid, vm.child.check_alive, args, seed)
                    peers.append(peer)
                    print_flat("VictoriaMetrics flat-out", number, peer)
            if not args.no_compaction:
                compacted = compaction(args, scratch, seed_base, peer_name is not None)
                print_compaction(compacted)
                if args.database_url:
                    print(
                        "    (a shared database: the storage report covers every phase's data, "
                        "not only this block)"
                    )
    except BenchError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ingest: interrupted; servers stopped and temporary folders removed", file=sys.stderr)
        return 130
    summary(args, flats, peers, paced, compacted)
    print()
    command = [".venv/bin/python", "bench/ingest.py"]
    if args.smoke:
        command.append("--smoke")
    elif args.quick:
        command.append("--quick")
    else:
        command += [
            "--nodes", str(args.nodes), "--paced-nodes", str(args.paced_nodes),
            "--seconds", f"{args.seconds:g}", "--paced-seconds", f"{args.paced_seconds:g}",
            "--runs", str(args.runs), "--compact-nodes", str(args.compact_nodes),
            "--compact-hours", f"{args.compact_hours:g}",
        ]  # fmt: skip
    if args.no_peer:
        command.append("--no-peer")
    if args.no_compaction:
        command.append("--no-compaction")
    if args.database_url:
        command += ["--database-url", "<url>"]
    print("reproduce: " + " ".join(command))
    if args.smoke:
        return smoke_verdict("ingest", smoke_problems(args, flats, peers, paced, compacted))
    return 0


def smoke_problems(
    args: argparse.Namespace,
    flats: list[FlatRun],
    peers: list[FlatRun],
    paced: dict[int, list[PacedRun]],
    compacted: Compaction | None,
) -> list[str]:
    """Returns: what failed in a smoke run: a refused push, an empty figure, compaction that
    did not finish, or a peer that is missing when CI requires it."""
    problems: list[str] = []
    if not args.no_peer and not peers and peer_required():
        problems.append("VictoriaMetrics is missing (DCMON_REQUIRE_INTEGRATION=1)")
    for name, runs in (("dcmon flat-out", flats), ("VictoriaMetrics flat-out", peers)):
        for run in runs:
            if run.failures or run.pushes == 0 or run.samples_per_second <= 0:
                problems.append(f"{name}: {run.failures}/{run.pushes} pushes failed {run.errors}")
    for size, runs in paced.items():
        for run in runs:
            if run.failures or run.pushes == 0:
                problems.append(
                    f"paced {size}: {run.failures}/{run.pushes} pushes failed {run.errors}"
                )
            if size == args.nodes and (run.metrics is None or not run.metrics.lines):
                problems.append(f"paced {size}: /metrics had no samples")
    if compacted is not None:
        if compacted.failures or compacted.samples == 0:
            problems.append(f"compaction load: {compacted.failures} pushes failed")
        if compacted.compacted.outcome != "empty":
            problems.append(f"compaction: {compacted.compacted.describe()}")
        if raw_bytes_per_sample(compacted) != raw_bytes_per_sample(compacted):
            problems.append("compaction: no raw tier bytes per sample in the storage report")
        if peers and compacted.peer_samples != compacted.samples:
            problems.append(
                f"compaction: VictoriaMetrics took {compacted.peer_samples} samples, dcmon "
                f"{compacted.samples}"
            )
    return problems


if __name__ == "__main__":
    sys.exit(main())
