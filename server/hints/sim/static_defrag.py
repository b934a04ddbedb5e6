"""Scenario S1, static defragmentation: place to 100 %, rebalance once, keep arriving to 130 %.

Stage: simulator scenario (reference §5.2). Input: the trace tables, a variant, a seed and a
move budget (share of the pods running at the hook). Output: an ``S1Run``: % GPUs allocated at
100 % and 130 % arrival (FGD's metric), pods moved, pods lost, constraint violations and the
engine's time for its round.

Variants, each a full replay with the same seed (so the same arrivals and node order):
- ``bestfit``, ``fgd``: placement alone (B0);
- ``bestfit+dcmon``: BestFit, and at 100 % one round of the hint engine's ``defragment`` with
  the move budget, its demand the workload's typical pods; the moves are applied through the
  simulator, which counts every hint that does not fit as a violation;
- ``bestfit+dcmon-ls``: the same with LS pods movable too (a sensitivity, not the scenario);
- ``bestfit+lownode``, ``bestfit+highnode``: descheduler LowNodeUtilization and
  HighNodeUtilization on requests (B1) with the same budget, evicted pods re-placed by BestFit;
- ``bestfit+oracle``: every running pod re-placed from empty with FGD, unlimited moves (B5).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any

from server.hints.engine import plan
from server.hints.hint import Kind
from server.hints.policy import Policy as EnginePolicy
from server.hints.sim import baselines
from server.hints.sim.cluster import ClusterState
from server.hints.sim.replay import HookPoint, replay
from server.hints.sim.to_snapshot import (
    NON_PREEMPTIBLE_QOS,
    apply_hints,
    to_snapshot,
    typical_demand,
)
from server.hints.sim.trace import NodeTable, PodTable

VARIANTS = (
    "bestfit",
    "bestfit+dcmon",
    "bestfit+lownode",
    "bestfit+highnode",
    "bestfit+oracle",
    "fgd",
)
EXTRA_VARIANTS = ("bestfit+dcmon-ls",)
DEFAULT_BUDGET = 0.05


@dataclass(frozen=True)
class S1Run:
    """One replay of S1. ``moved`` counts pods moved or evicted at the hook, each once (for
    the descheduler every evicted pod, restarted even where it lands back; for the oracle the
    pods placed elsewhere or nowhere)."""

    variant: str
    seed: int
    alloc_100: float
    alloc_130: float
    running_at_hook: int
    moved: int
    lost: int
    violations: int
    hints: int
    engine_s: float
    seconds: float
    note: str = ""

    @property
    def moved_pct(self) -> float:
        return 100.0 * self.moved / self.running_at_hook if self.running_at_hook else 0.0


@dataclass
class _Hook:
    variant: str
    seed: int
    budget_share: float
    pods: PodTable
    running: int = 0
    moved: int = 0
    lost: int = 0
    violations: int = 0
    hints: int = 0
    engine_s: float = 0.0
    note: str = ""

    def __call__(self, state: ClusterState, point: HookPoint) -> None:
        self.running = sum(state.node_of(k) is not None for k in range(state.instance_count))
        budget = int(self.budget_share * self.running)
        if self.variant.startswith("bestfit+dcmon"):
            self._engine(state, budget, self.variant.endswith("-ls"))
            return
        placer = point.placer
        if placer is None:
            raise RuntimeError("the replay gave the hook no placement policy")
        if self.variant == "bestfit+lownode":
            done = baselines.low_node_utilization(state, placer, budget)
        elif self.variant == "bestfit+highnode":
            done = baselines.high_node_utilization(state, placer, budget)
        else:
            done = baselines.oracle_replacement(state, self.seed)
            # every pod was taken off; only those placed elsewhere (or nowhere) moved
            done.evicted = len(done.moved | done.lost)
        self.moved, self.lost, self.note = done.evicted, len(done.lost), done.aborted

    def _engine(self, state: ClusterState, budget: int, ls_movable: bool) -> None:
        fixed = frozenset() if ls_movable else NON_PREEMPTIBLE_QOS
        view = to_snapshot(state, typical_demand(self.pods), fixed_qos=fixed)
        policy = EnginePolicy(max_moves_per_round=budget, kinds=(Kind.DEFRAGMENT,))
        started = time.perf_counter()
        round_ = plan(view.snapshot, policy, self.seed)
        self.engine_s = time.perf_counter() - started
        applied = apply_hints(state, view, round_.accepted, max_moves=budget)
        self.moved = len(applied.moved | set(applied.released))
        self.violations = len(applied.violations)
        self.hints = applied.hints


def run_s1(
    nodes: NodeTable,
    pods: PodTable,
    variant: str,
    seed: int,
    budget_share: float = DEFAULT_BUDGET,
    ratio: float = 1.3,
) -> S1Run:
    """Replays one variant of S1 for one seed."""
    if variant not in VARIANTS + EXTRA_VARIANTS:
        raise ValueError(f"unknown S1 variant {variant!r}")
    placement = "fgd" if variant == "fgd" else "bestfit"
    hook = _Hook(variant, seed, budget_share, pods)
    hooks = {} if "+" not in variant else {1.0: hook}
    result = replay(nodes, pods, placement, seed, ratio, hooks=hooks)
    if "+" not in variant:
        hook.running = 0
    return S1Run(
        variant=variant,
        seed=seed,
        alloc_100=result.alloc_pct_at(100),
        alloc_130=result.alloc_pct_at(round(ratio * 100)),
        running_at_hook=hook.running,
        moved=hook.moved,
        lost=hook.lost,
        violations=hook.violations,
        hints=hook.hints,
        engine_s=hook.engine_s,
        seconds=result.seconds,
        note=hook.note,
    )


_tables: tuple[NodeTable, PodTable, float] | None = None


def _init(nodes: NodeTable, pods: PodTable, budget_share: float) -> None:
    global _tables  # noqa: PLW0603 - a worker process' tables, set once by its initializer
    _tables = (nodes, pods, budget_share)


def _run(variant: str, seed: int) -> S1Run:
    if _tables is None:
        raise RuntimeError("worker started without tables")
    return run_s1(_tables[0], _tables[1], variant, seed, _tables[2])


def run_s1_all(
    nodes: NodeTable,
    pods: PodTable,
    variants: Sequence[str],
    seeds: Sequence[int],
    budget_share: float = DEFAULT_BUDGET,
    workers: int = 1,
    on_done: Callable[[S1Run], None] | None = None,
) -> list[S1Run]:
    """Runs every (variant, seed), in ``workers`` processes when more than one."""
    jobs = [(v, s) for v in variants for s in seeds]
    runs: list[S1Run] = []
    if workers <= 1 or len(jobs) == 1:
        for variant, seed in jobs:
            runs.append(run_s1(nodes, pods, variant, seed, budget_share))
            if on_done is not None:
                on_done(runs[-1])
        return runs
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), initializer=_init, initargs=(nodes, pods, budget_share)
    ) as pool:
        futures = [pool.submit(_run, v, s) for v, s in jobs]
        for future in as_completed(futures):
            runs.append(future.result())
            if on_done is not None:
                on_done(runs[-1])
    order = {job: n for n, job in enumerate(jobs)}
    return sorted(runs, key=lambda r: order[(r.variant, r.seed)])


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Returns: mean and sample standard deviation, NaN where undefined."""
    finite = [v for v in values if not math.isnan(v)]
    mean = statistics.fmean(finite) if finite else math.nan
    return mean, statistics.stdev(finite) if len(finite) > 1 else math.nan


def summarize_s1(runs: Sequence[S1Run]) -> list[dict[str, Any]]:
    """Returns: per variant (in first-seen order), the means and stds over seeds, JSON-ready."""
    by: dict[str, list[S1Run]] = {}
    for r in runs:
        by.setdefault(r.variant, []).append(r)
    out = []
    for variant, group in by.items():
        row: dict[str, Any] = {"variant": variant, "seeds": [r.seed for r in group]}
        for name in ("alloc_100", "alloc_130", "moved_pct", "lost", "violations", "engine_s"):
            mean, std = mean_std([float(getattr(r, name)) for r in group])
            row[name] = {"mean": _finite(mean), "std": _finite(std)}
        row["notes"] = sorted({r.note for r in group if r.note})
        row["runs"] = [asdict(r) | {"moved_pct": r.moved_pct} for r in group]
        out.append(row)
    return out


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value
