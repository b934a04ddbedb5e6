"""Placement replay of the Alibaba v2023 GPU cluster beside the FGD artifact: the validation gate.

The trace (``../shared/data/traces``: 1,213 GPU nodes, 6,212 GPUs, the default pod list of
8,152 pods) is replayed by ``server.hints.sim`` with FGD's method: pods shuffled, tuned up to
130 % of GPU capacity, placed one by one with Random, BestFit and FGD, seeds 42-51. Printed per
policy: % of GPUs allocated (``used_gpu_milli / (total_gpus x 1000)``) at 100 % and 130 %
arrival, mean ± sample std over the seeds, beside the artifact's cached results
(``fgd-artifact-summary/fgd_expected_results_summary.csv``) and the gap in points; the gate is
every policy within ±0.5 pp at 130 % (``reference/rebalancing.md`` §5.5). Also: failed pods,
seconds per replay and the wall time of the whole run (worker processes, ``--workers``).
``--chart`` writes an SVG of allocation against arrival (mean over seeds) with the artifact's
figures marked.

    .venv/bin/python bench/hints.py                         # the gate: 3 policies x 10 seeds
    .venv/bin/python bench/hints.py --policy fgd --seeds 42-44 --chart /tmp/hints.svg
    .venv/bin/python bench/hints.py --workload openb_pod_list_gpushare40 --json out.json
    .venv/bin/python bench/hints.py --smoke    # CI: 1 seed, 3 policies on 300 nodes; fails
                                               # on any error or a figure out of range
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from server.hints.sim.replay import POLICIES, ReplayResult
from server.hints.sim.runs import PolicySummary, parse_seeds, run_replays, summarize
from server.hints.sim.trace import (
    DEFAULT_WORKLOAD,
    NodeTable,
    PodTable,
    TraceError,
    default_trace_dir,
    load_trace,
)

GATE_PP = 0.5
POINTS = (100, 130)
ARTIFACT_FILE = Path("fgd-artifact-summary/fgd_expected_results_summary.csv")
ARTIFACT_POLICY = {"random": "01-Random", "bestfit": "05-BestFit", "fgd": "06-FGD"}
SMOKE_NODES = 300
COLOURS = {"random": "#d62728", "bestfit": "#1f77b4", "fgd": "#2ca02c"}


def artifact(trace_dir: Path, workload: str) -> dict[str, dict[int, tuple[float, float]]]:
    """Returns: per policy, per arrival %: the artifact's (mean, std) % GPUs allocated."""
    path = trace_dir / ARTIFACT_FILE
    if not path.is_file():
        return {}
    out: dict[str, dict[int, tuple[float, float]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["workload"] != workload:
                continue
            for ours, theirs in ARTIFACT_POLICY.items():
                if row["policy"] == theirs:
                    out[ours] = {
                        p: (
                            float(row[f"gpu_alloc_pct_at_{p}"]),
                            float(row[f"gpu_alloc_pct_std_at_{p}"]),
                        )
                        for p in POINTS
                    }
    return out


def subset(nodes: NodeTable, pods: PodTable, count: int, seed: int) -> tuple[NodeTable, PodTable]:
    """Returns: ``count`` nodes drawn at random, and pods in proportion to their GPUs."""
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(nodes), size=min(count, len(nodes)), replace=False))
    share = nodes.num_gpu[keep].sum() / nodes.total_gpus
    rows = np.sort(rng.choice(len(pods), size=max(1, round(share * len(pods))), replace=False))
    small_nodes = NodeTable(
        names=tuple(nodes.names[i] for i in keep),
        cpu_milli=nodes.cpu_milli[keep],
        memory_mib=nodes.memory_mib[keep],
        num_gpu=nodes.num_gpu[keep],
        model=tuple(nodes.model[i] for i in keep),
    )
    small_pods = PodTable(
        names=tuple(pods.names[i] for i in rows),
        cpu_milli=pods.cpu_milli[rows],
        memory_mib=pods.memory_mib[rows],
        num_gpu=pods.num_gpu[rows],
        gpu_milli=pods.gpu_milli[rows],
        gpu_spec=tuple(pods.gpu_spec[i] for i in rows),
        qos=tuple(pods.qos[i] for i in rows),
    )
    return small_nodes, small_pods


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if not math.isnan(value) else "-"


def report(
    summaries: list[PolicySummary], theirs: dict[str, dict[int, tuple[float, float]]]
) -> dict[str, Any]:
    head = f"  {'policy':<8}{'seeds':>6}"
    for p in POINTS:
        head += f"{f'ours@{p}':>16}{f'artifact@{p}':>16}{'gap pp':>8}"
    print(head + f"{'gate':>6}{'failed':>8}{'s/replay':>10}")
    verdicts: dict[str, Any] = {}
    for s in summaries:
        line = f"  {s.policy:<8}{len(s.seeds):>6}"
        gaps: dict[int, float] = {}
        for p in POINTS:
            mean, std = s.mean(p), s.std(p)
            their_mean, their_std = theirs.get(s.policy, {}).get(p, (math.nan, math.nan))
            gaps[p] = mean - their_mean
            line += (
                f"{fmt(mean) + ' ± ' + fmt(std):>16}{fmt(their_mean) + ' ± ' + fmt(their_std):>16}"
            )
            line += f"{fmt(gaps[p], 2):>8}"
        passed = abs(gaps[130]) <= GATE_PP if not math.isnan(gaps[130]) else None
        mark = "-" if passed is None else ("PASS" if passed else "MISS")
        line += f"{mark:>6}{np.mean(s.failed):>8.0f}{np.mean(s.seconds):>10.1f}"
        print(line)
        verdicts[s.policy] = {"gap_pp": {str(p): gaps[p] for p in POINTS}, "within_gate": passed}
    return verdicts


def curve(results: list[ReplayResult], policy: str, top: int) -> list[tuple[int, float]]:
    """Returns: (arrival %, mean % allocated over seeds) for arrival 1..top."""
    runs = [r for r in results if r.policy == policy]
    points = []
    for p in range(1, top + 1):
        values = [v for v in (r.alloc_pct_at(p) for r in runs) if not math.isnan(v)]
        if values:
            points.append((p, float(np.mean(values))))
    return points


def chart(
    path: Path,
    results: list[ReplayResult],
    policies: list[str],
    theirs: dict[str, dict[int, tuple[float, float]]],
    top: int,
    title: str,
) -> None:
    """Writes an SVG: % GPUs allocated against arrival %, one line per policy."""
    width, height, left, right, up, down = 720, 420, 60, 130, 30, 45
    y_low, y_high = 50.0, 100.0

    def x(v: float) -> float:
        return left + (width - left - right) * v / top

    def y(v: float) -> float:
        v = min(max(v, y_low), y_high)
        return up + (height - up - down) * (y_high - v) / (y_high - y_low)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{left}" y="18" font-size="14">{title}</text>',
    ]
    for tick in range(0, top + 1, 10):
        parts.append(
            f'<line x1="{x(tick):.1f}" y1="{y(y_low):.1f}" x2="{x(tick):.1f}" y2="{y(y_high):.1f}"'
            ' stroke="#eee"/>'
            f'<text x="{x(tick):.1f}" y="{height - down + 16}" text-anchor="middle">{tick}</text>'
        )
    for tick in range(int(y_low), int(y_high) + 1, 10):
        parts.append(
            f'<line x1="{x(0):.1f}" y1="{y(tick):.1f}" x2="{x(top):.1f}" y2="{y(tick):.1f}"'
            ' stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    parts.append(
        f'<text x="{x(top / 2):.1f}" y="{height - 8}" text-anchor="middle">'
        "arrived GPU requests, % of capacity</text>"
        f'<text x="14" y="{y(75):.1f}" transform="rotate(-90 14 {y(75):.1f})" '
        'text-anchor="middle">% GPUs allocated</text>'
    )
    for n, policy in enumerate(policies):
        colour = COLOURS.get(policy, "black")
        shown = [(p, v) for p, v in curve(results, policy, top) if v >= y_low]
        line = " ".join(f"{x(p):.1f},{y(v):.1f}" for p, v in shown)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{line}"/>')
        for p, (mean, _) in theirs.get(policy, {}).items():
            parts.append(
                f'<circle cx="{x(p):.1f}" cy="{y(mean):.1f}" r="4" fill="none" '
                f'stroke="{colour}" stroke-width="1.5"/>'
            )
        ly = up + 20 + 18 * n
        parts.append(
            f'<line x1="{width - right + 10}" y1="{ly}" x2="{width - right + 30}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="2"/>'
            f'<text x="{width - right + 36}" y="{ly + 4}">{policy}</text>'
        )
    ly = up + 20 + 18 * len(policies)
    parts.append(
        f'<circle cx="{width - right + 20}" cy="{ly}" r="4" fill="none" stroke="black"/>'
        f'<text x="{width - right + 36}" y="{ly + 4}">FGD artifact</text>'
    )
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def run(args: argparse.Namespace) -> int:
    trace_dir = args.trace_dir or default_trace_dir()
    try:
        nodes, pods = load_trace(trace_dir, args.workload)
    except TraceError as exc:
        print(f"hints bench: {exc}", file=sys.stderr)
        return 1
    seeds = [42] if args.smoke else parse_seeds(args.seeds)
    if args.smoke:
        nodes, pods = subset(nodes, pods, SMOKE_NODES, seed=0)
    theirs = {} if args.smoke else artifact(trace_dir, args.workload)
    print(
        f"hints bench: {args.workload}, {len(nodes)} nodes, {nodes.total_gpus} GPUs, "
        f"{len(pods)} pods; {', '.join(args.policy)}; seeds {seeds[0]}-{seeds[-1]} "
        f"({len(seeds)}); arrival to 130 %; {args.workers} worker processes; "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    started = time.perf_counter()
    results = replays(args, nodes, pods, seeds)
    wall = time.perf_counter() - started
    summaries = summarize(results, POINTS)
    print()
    verdicts = report(summaries, theirs)
    cpu = sum(r.seconds for r in results)
    print(f"  wall {wall:.1f} s for {len(results)} replays ({cpu:.1f} s of replay time)")
    gate = [v["within_gate"] for v in verdicts.values()]
    if theirs and all(g is not None for g in gate):
        print(f"  gate (every policy within ±{GATE_PP} pp of the artifact at 130 %): "
              + ("PASS" if all(gate) else "MISS"))  # fmt: skip
    print(f"  command: .venv/bin/python bench/hints.py {' '.join(sys.argv[1:])}".rstrip())
    if args.chart:
        chart(args.chart, results, args.policy, theirs, 130,
              f"{args.workload}: % GPUs allocated, mean of {len(seeds)} seeds")  # fmt: skip
        print(f"  chart: {args.chart}")
    if args.json:
        document = {
            "workload": args.workload,
            "nodes": len(nodes),
            "gpus": nodes.total_gpus,
            "pods": len(pods),
            "seeds": seeds,
            "wall_s": wall,
            "policies": [s.as_dict() for s in summaries],
            "artifact": {p: {str(k): v for k, v in d.items()} for p, d in theirs.items()},
            "gate": verdicts,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    if args.smoke:
        return smoke_problems(results)
    return 0


def replays(
    args: argparse.Namespace, nodes: NodeTable, pods: PodTable, seeds: list[int]
) -> list[ReplayResult]:
    def line(r: ReplayResult) -> None:
        print(
            f"  {r.policy} seed {r.seed}: {fmt(r.alloc_pct_at(100))} % at 100, "
            f"{fmt(r.alloc_pct_at(130))} % at 130, {r.failed} failed, {r.seconds:.1f} s",
            flush=True,
        )

    if not sys.stderr.isatty():
        return run_replays(nodes, pods, args.policy, seeds, 1.3, args.workers, on_done=line)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=Console(file=sys.stderr), transient=True) as progress:
        task = progress.add_task("replays", total=len(args.policy) * len(seeds))

        def done(r: ReplayResult) -> None:
            line(r)
            progress.update(task, advance=1, description=f"{r.policy} seed {r.seed}")

        return run_replays(nodes, pods, args.policy, seeds, 1.3, args.workers, on_done=done)


def smoke_problems(results: list[ReplayResult]) -> int:
    problems = []
    for r in results:
        for p in POINTS:
            value = r.alloc_pct_at(p)
            if math.isnan(value) or not 0 < value <= 100:
                problems.append(f"{r.policy} seed {r.seed}: allocation at {p} % is {value}")
        if r.failed == 0:
            problems.append(f"{r.policy} seed {r.seed}: nothing failed at 130 % arrival")
    if not problems:
        print("hints smoke: OK")
        return 0
    print("hints smoke: FAILED", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--trace-dir", type=Path, help="trace folder (default ../shared/data/traces)"
    )
    parser.add_argument("--workload", default=DEFAULT_WORKLOAD, help="pod list name")
    parser.add_argument("--policy", nargs="+", choices=POLICIES, default=list(POLICIES))
    parser.add_argument("--seeds", default="42-51", help="seeds (default 42-51)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--chart", type=Path, help="write an SVG chart here")
    parser.add_argument(
        "--smoke", action="store_true", help=f"CI: 1 seed on {SMOKE_NODES} nodes of the trace"
    )
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
