"""The alert rule pack's cost per evaluation round, dcmon beside Prometheus, on the same data.

``--nodes`` simulated 8-GPU nodes (``bench/loadgen.py``'s 400 series plus the series the pack
reads, ``alerting_load.RULE_SERIES``: 692 in all) x ``--minutes`` of history at the agents'
15 s are written into a fresh dcmon database through the server's ingest service in-process
(``promql_load``). Then ``--runs`` fresh processes each build the server application on it
and time ``--rounds`` rounds of the whole pack (``alerts/*.yaml``, every group's interval set
to ``--interval``), at the end of the history (``alerting_eval``): wall time and the
process' CPU per round, p50 and p99. Prometheus (Debian's 2.42) gets the same samples
backfilled with promtool, moved forward in time so that its rounds, at the wall clock's time,
sit at the same place in the history (``alerting_peer``), and the exported pack (``dcmon rules
export``); its rounds are timed from its own rule-group metrics and its CPU from ``/proc``.
Printed: both systems side by side with the ratio, the alerts each has firing and pending at
the end, the target (a round at 1,000 nodes in <= 1 s of one core) and, with ``--profile``,
dcmon's top functions over one more round (cProfile).

The pack's long windows see less than they ask for: ``predict_linear(...[6h])`` and the
``[1h]`` rates read ``--minutes`` of data. Rule queries run at the slot (query offset 0), as
Prometheus' do by default.

``--latency`` adds the other half: the latency from a sample's ingest to the webhook receiving
its alert, through real server processes, beside Prometheus -> Alertmanager
(``bench/alerting_latency.py`` at its own sizes: 100 background nodes, 10 s, 10 trips);
``--smoke`` runs its smoke too.

    .venv/bin/python bench/alerting.py --nodes 100                 # 3 runs x 10 rounds
    .venv/bin/python bench/alerting.py --nodes 1000 --runs 1 --rounds 3 --minutes 15
    .venv/bin/python bench/alerting.py --nodes 100 --profile --json out.json
    .venv/bin/python bench/alerting.py --latency                   # ... then sample -> webhook
    .venv/bin/python bench/alerting.py --smoke   # CI: 3 nodes x 12 min, 2 rounds; fails on
                                                 # any rule error or failure, or (under CI) a
                                                 # missing Prometheus; then the latency smoke
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import alerting_latency
from agent_overhead import BenchError, cpu_model, peer_required, smoke_verdict
from alerting_eval import EvalJob, EvalResult, evaluate
from alerting_load import RULE_SERIES, exported, pack_copy, promtool_check, series_per_node
from alerting_peer import PeerResult, measure
from loadgen import Plan, Target, percentile
from promql_load import load_in_process
from promql_peer import prometheus_version
from query import SERVER_ENV

DATA_INTERVAL_SECONDS = 15.0
TARGET_CPU_SECONDS = 1.0
TARGET_NODES = 1000
# Prometheus' setup (backfill, start) is estimated from this rate so its rounds land where
# dcmon's did; a slower machine only costs rounds (the output says so).
BACKFILL_SAMPLES_PER_SECOND = 60_000.0
PROMETHEUS_START_SECONDS = 10.0


def fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if value == value else "-"


def stats(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 0.5) if values else math.nan,
        "p99": percentile(values, 0.99) if values else math.nan,
    }


def run_dcmon(
    args: argparse.Namespace, scratch: Path, data_dir: Path, end_s: float
) -> list[EvalResult]:
    env = {
        **SERVER_ENV,
        "DCMON_SERVER_RULE_QUERY_OFFSET_SECONDS": "0",
        "DCMON_SERVER_RULE_EVALUATION_INTERVAL_SECONDS": f"{args.interval:g}",
        "DCMON_SERVER_MAINTENANCE_INTERVAL_SECONDS": "3600",
    }
    results = []
    for number in range(1, args.runs + 1):
        files = pack_copy(scratch / f"rules-run{number}", args.interval, f"-run{number}")
        # Rounds 1..rounds+1 end at the data's end (the first is warm-up, not measured).
        first = end_s - (args.rounds + 1.5) * args.interval
        profile = args.profile and number == args.runs
        if profile:
            first -= args.interval  # the profiled round comes last, still within the data
        job = EvalJob(
            data_dir, tuple(map(str, files)), env, first, args.interval, args.rounds, profile
        )
        result = evaluate(job, args.timeout)
        results.append(result)
        walls = ", ".join(fmt(w) for w in result.wall_s)
        print(
            f"  dcmon run {number}: {result.groups} groups, {result.rules} rules; round wall "
            f"s {walls}; CPU p50 {fmt(stats(result.cpu_s)['p50'])} s; firing {result.firing}, "
            f"pending {result.pending}",
            flush=True,
        )
    return results


def summary(
    args: argparse.Namespace, ours: list[EvalResult], theirs: PeerResult | None
) -> dict[str, Any]:
    walls = [w for r in ours for w in r.wall_s]
    cpus = [c for r in ours for c in r.cpu_s]
    run_p50 = [stats(r.cpu_s)["p50"] for r in ours]
    dcmon: dict[str, Any] = {
        "wall_s": stats(walls),
        "cpu_s": stats(cpus),
        "cpu_p50_per_run": run_p50,
    }
    peer: dict[str, Any] | None = None
    if theirs is not None:
        peer = {"wall_s": stats(theirs.wall_s), "cpu_s": {"per_round": theirs.cpu_s}}
    print()
    print(f"  {'per round of the pack':<26}{'dcmon p50':>11}{'p99':>9}{'Prom p50':>10}{'p99':>9}"
          f"{'ratio':>8}")  # fmt: skip
    rows = (("wall s", dcmon["wall_s"], peer["wall_s"] if peer else None),)
    for name, a, b in rows:
        ratio = a["p50"] / b["p50"] if b and b["p50"] > 0 else math.nan
        print(
            f"  {name:<26}{fmt(a['p50']):>11}{fmt(a['p99']):>9}"
            f"{fmt(b['p50'] if b else math.nan):>10}{fmt(b['p99'] if b else math.nan):>9}"
            f"{fmt(ratio, 1) + 'x' if ratio == ratio else '':>8}"
        )
    their_cpu = theirs.cpu_s if theirs else math.nan
    ratio = dcmon["cpu_s"]["p50"] / their_cpu if their_cpu > 0 else math.nan
    print(
        f"  {'CPU s (dcmon: p50/p99)':<26}{fmt(dcmon['cpu_s']['p50']):>11}"
        f"{fmt(dcmon['cpu_s']['p99']):>9}{fmt(their_cpu):>10}{'':>9}"
        f"{fmt(ratio, 1) + 'x' if ratio == ratio else '':>8}"
    )
    print(
        "  (dcmon: wall and process CPU of each round in-process; Prometheus: the sum of its "
        "groups' last_duration per round, CPU from /proc over the timed window per round)"
    )
    if ours:
        print(
            f"  alerts at the end: dcmon {ours[-1].firing} firing, {ours[-1].pending} pending"
            + (f"; Prometheus {theirs.firing} firing, {theirs.pending} pending" if theirs else "")
        )
    cpu = dcmon["cpu_s"]["p50"]
    verdict = "PASS" if cpu <= TARGET_CPU_SECONDS else "MISS"
    scale = (
        ""
        if args.nodes == TARGET_NODES
        else f" (judged at {TARGET_NODES}; this run has {args.nodes})"
    )
    print(
        f"  target: a round <= {TARGET_CPU_SECONDS:g} s of one core: dcmon CPU p50 "
        f"{fmt(cpu)} s {verdict}{scale}"
    )
    return {
        "dcmon": dcmon,
        "prometheus": peer,
        "target_cpu_s": TARGET_CPU_SECONDS,
        "verdict": verdict,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100, help="simulated nodes (default 100)")
    parser.add_argument("--minutes", type=float, default=30.0, help="history (default 30)")
    parser.add_argument("--interval", type=float, default=15.0, help="group interval, s")
    parser.add_argument("--runs", type=int, default=3, help="fresh evaluation processes")
    parser.add_argument("--rounds", type=int, default=10, help="measured rounds per run")
    parser.add_argument("--profile", action="store_true", help="cProfile one more dcmon round")
    parser.add_argument("--no-peer", action="store_true", help="skip Prometheus")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--workers", type=int, default=2, help="loading processes")
    parser.add_argument("--timeout", type=float, default=3600.0, help="bound on each phase")
    parser.add_argument(
        "--latency",
        action="store_true",
        help="then measure sample -> webhook latency (bench/alerting_latency.py's defaults)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="CI: 3 nodes x 12 min, 2 rounds at 5 s"
    )
    args = parser.parse_args()
    status = rounds(parser, args)
    if status == 130 or not (args.latency or args.smoke):
        return status
    print(flush=True)
    latency = argparse.Namespace(
        nodes=100, interval=10.0, trips=10, no_peer=args.no_peer, smoke=args.smoke,
        json=args.json.with_suffix(".latency.json") if args.json else None,
    )  # fmt: skip
    return max(status, alerting_latency.run(latency))


def rounds(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The cost per round of the pack (everything but ``--latency``); returns: exit status."""
    if args.smoke:
        args.nodes, args.minutes, args.runs, args.rounds, args.interval = 3, 12.0, 1, 2, 5.0
    window = (args.rounds + 3) * args.interval
    if args.nodes < 1 or args.runs < 1 or args.rounds < 1 or args.minutes * 60 < window + 600:
        parser.error(
            "--nodes, --runs, --rounds >= 1; --minutes must leave 10 min before the rounds"
        )
    peer = None if args.no_peer else prometheus_version()
    ticks = round(args.minutes * 60 / DATA_INTERVAL_SECONDS)
    step_ms = round(DATA_INTERVAL_SECONDS * 1000)
    end_ms = int(time.time() * 1000) // step_ms * step_ms
    start_ms = end_ms - ticks * step_ms
    plan = Plan(
        Target("dcmon", 0), "flat", args.nodes, 1, args.workers,
        interval_seconds=DATA_INTERVAL_SECONDS, ticks=ticks, start_ms=start_ms, extra=RULE_SERIES,
    )  # fmt: skip
    per_node = series_per_node()
    print(f"alerting benchmark on {os.cpu_count()} x {cpu_model()}")
    print(f"  peer: {peer or 'skipped (' + ('--no-peer' if args.no_peer else 'missing') + ')'}")
    print(
        f"  data: {args.nodes} nodes x {per_node} series x {args.minutes:g} min at "
        f"{DATA_INTERVAL_SECONDS:g} s; pack at a {args.interval:g} s interval; {args.runs} runs x "
        f"{args.rounds} rounds (+1 warm-up)"
    )
    problems: list[str] = []
    ours: list[EvalResult] = []
    theirs: PeerResult | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="dcmon-bench-alerting-") as scratch_dir:
            scratch = Path(scratch_dir)
            data_dir = scratch / "dcmon"
            print("loading dcmon", flush=True)
            env = {**SERVER_ENV, "DCMON_SERVER_MAINTENANCE_INTERVAL_SECONDS": "3600"}
            loaded = load_in_process(plan, data_dir, env, args.workers, args.timeout)
            print(
                f"  {loaded.samples:,} samples in {loaded.seconds:.0f} s "
                f"({loaded.samples / loaded.seconds:,.0f}/s)",
                flush=True,
            )
            ours = run_dcmon(args, scratch, data_dir, end_ms / 1000)
            if peer:
                files = pack_copy(scratch / "rules-prometheus", args.interval)
                rules = exported(files, scratch / "exported.yaml")
                complaint = promtool_check(rules)
                if complaint:
                    raise BenchError(f"promtool check rules refused the export: {complaint}")
                samples = args.nodes * per_node * ticks
                estimate = samples / BACKFILL_SAMPLES_PER_SECOND + PROMETHEUS_START_SECONDS
                print(f"loading and starting Prometheus (estimate {estimate:.0f} s)", flush=True)
                theirs = measure(
                    plan, rules, scratch, args.interval, args.rounds, estimate, args.nodes * 8
                )
                print(
                    f"  backfilled {theirs.backfilled:,} samples in {theirs.backfill_s:.0f} s; "
                    f"{len(theirs.wall_s)} rounds of {theirs.groups} groups timed; "
                    f"'out of bounds' in its log: {theirs.out_of_bounds}",
                    flush=True,
                )
                problems += theirs.problems
    except BenchError as exc:
        print(f"alerting: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "alerting: interrupted; processes stopped, temporary folders removed", file=sys.stderr
        )
        return 130
    figures = summary(args, ours, theirs)
    for line in problems:
        print(f"  note: {line}")
    if ours and ours[-1].profile:
        print("\ndcmon, one round under cProfile:\n" + ours[-1].profile)
    command = [".venv/bin/python", "bench/alerting.py"]
    if args.smoke:
        command.append("--smoke")
    else:
        command += ["--nodes", str(args.nodes), "--minutes", f"{args.minutes:g}"]
        command += ["--interval", f"{args.interval:g}", "--runs", str(args.runs)]
        command += ["--rounds", str(args.rounds)]
    command += ["--no-peer"] if args.no_peer else []
    print("reproduce: " + " ".join(command))
    if args.json:
        document = {
            "nodes": args.nodes, "series_per_node": per_node, "minutes": args.minutes,
            "interval_s": args.interval, "summary": figures,
            "dcmon_runs": [{k: v for k, v in asdict(r).items() if k != "profile"} for r in ours],
            "prometheus": asdict(theirs) if theirs else None, "command": " ".join(command),
        }  # fmt: skip
        args.json.write_text(json.dumps(document, indent=2))
    if not args.smoke:
        return 0
    if peer is None and not args.no_peer and peer_required():
        problems.append("Prometheus or promtool is missing (DCMON_REQUIRE_INTEGRATION=1)")
    for number, result in enumerate(ours, 1):
        problems += [f"dcmon run {number}: rule failed: {e}" for e in result.rule_errors]
        problems += [
            f"dcmon run {number}: {k} failed {v} times" for k, v in result.failures.items()
        ]
        if len(result.wall_s) != args.rounds:
            problems.append(f"dcmon run {number}: {len(result.wall_s)} rounds timed")
    if theirs is not None and not theirs.wall_s:
        problems.append("Prometheus: no round timed")
    return smoke_verdict("alerting", problems)


if __name__ == "__main__":
    sys.exit(main())
