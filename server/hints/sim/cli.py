"""``dcmon simulate``: replay a GPU-cluster trace with placement policies and report allocation.

    dcmon simulate                                  # Random, BestFit, FGD; seeds 42-51; 130 %
    dcmon simulate --policy fgd --seeds 42 --arrival 100
    dcmon simulate --trace-dir DIR --workload openb_pod_list_gpushare40 --json

Reads the trace from ``--trace-dir`` (default ``$DCMON_TRACE_DIR``, else
``../shared/data/traces``): ``alibaba-gpu-v2023/openb_node_list_gpu_node.csv`` and
``<workload>.csv``. Prints, per policy, the % of GPUs allocated at 100 % and at the final
arrival percentage (mean ± sample std over the seeds), failed pods and seconds per replay.

Exit codes: 0 done, 1 the trace could not be read, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dcmon simulate",
        description="Replay a GPU-cluster trace with placement policies (FGD's method).",
    )
    p.add_argument("--trace-dir", type=Path, default=None, help="trace folder (see above)")
    p.add_argument("--workload", default=DEFAULT_WORKLOAD, help="pod list name, without .csv")
    p.add_argument(
        "--policy", nargs="+", choices=POLICIES, default=list(POLICIES), help="policies to run"
    )
    p.add_argument("--seeds", default="42-51", help="seeds, e.g. 42-51 or 42,43 (default 42-51)")
    p.add_argument(
        "--arrival", type=int, default=130, help="arrival, %% of GPU capacity (default 130)"
    )
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def report_points(arrival: int) -> list[int]:
    """Returns: the arrival percentages reported: 100 (when reached) and the final one."""
    return sorted({p for p in (100, arrival) if p <= arrival})


def format_table(summaries: Sequence[PolicySummary], pcts: Sequence[int]) -> str:
    head = f"{'policy':<9}{'seeds':>6}" + "".join(f"{f'alloc@{p} %':>18}" for p in pcts)
    lines = [head + f"{'failed pods':>13}{'s/replay':>10}"]
    for s in summaries:
        cells = "".join(f"{f'{s.mean(p):.2f} ± {s.std(p):.2f}':>18}" for p in pcts)
        failed = sum(s.failed) / len(s.failed)
        seconds = sum(s.seconds) / len(s.seconds)
        lines.append(f"{s.policy:<9}{len(s.seeds):>6}{cells}{failed:>13.0f}{seconds:>10.1f}")
    return "\n".join(lines)


def main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = parser().parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        err.write(f"dcmon simulate: {exc}\n")
        return 2
    if args.arrival <= 0:
        err.write("dcmon simulate: --arrival must be a positive percentage\n")
        return 2
    trace_dir = default_trace_dir() if args.trace_dir is None else args.trace_dir
    try:
        nodes, pods = load_trace(trace_dir, args.workload)
    except TraceError as exc:
        err.write(f"dcmon simulate: {exc}\n")
        return 1
    pcts = report_points(args.arrival)
    results = _run_with_progress(args, nodes, pods, seeds, err)
    summaries = summarize(results, pcts)
    if args.json:
        document = {
            "trace": {"workload": args.workload, "nodes": len(nodes), "gpus": nodes.total_gpus},
            "arrival_pct": args.arrival,
            "policies": [s.as_dict() for s in summaries],
        }
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        out.write(
            f"{args.workload}: {len(nodes)} nodes, {nodes.total_gpus} GPUs, {len(pods)} pods; "
            f"arrival to {args.arrival} % of GPU capacity\n"
        )
        out.write(format_table(summaries, pcts) + "\n")
    return 0


def _run_with_progress(
    args: argparse.Namespace,
    nodes: NodeTable,
    pods: PodTable,
    seeds: list[int],
    err: TextIO,
) -> list[ReplayResult]:
    ratio = args.arrival / 100
    total = len(args.policy) * len(seeds)
    if not err.isatty():
        return run_replays(nodes, pods, args.policy, seeds, ratio, args.workers)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(file=err), transient=True) as progress:
        task = progress.add_task("replays", total=total)

        def done(r: ReplayResult) -> None:
            progress.update(task, advance=1, description=f"{r.policy} seed {r.seed}")

        return run_replays(nodes, pods, args.policy, seeds, ratio, args.workers, on_done=done)
