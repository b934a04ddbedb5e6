"""Many replays (policies x seeds) in worker processes, and their mean ± std.

Stage: simulator driver, above ``replay``; shared by ``dcmon simulate`` and the benchmark.
Input: the tables, policies, seeds, the arrival ratio and the arrival percentages to report.
Output: one ``ReplayResult`` per (policy, seed), and per policy a ``PolicySummary`` with the
allocation at each reported percentage over the seeds (sample standard deviation, as the FGD
artifact's summary).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from server.hints.sim.replay import ReplayResult, replay
from server.hints.sim.trace import NodeTable, PodTable

_tables: tuple[NodeTable, PodTable] | None = None


def parse_seeds(text: str) -> list[int]:
    """Returns: seeds from ``"42-51"``, ``"42,45"`` or a mix of both."""
    seeds: list[int] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        first, sep, last = part.partition("-")
        try:
            if sep:
                low, high = int(first), int(last)
                if high < low:
                    raise ValueError(part)
                seeds.extend(range(low, high + 1))
            else:
                seeds.append(int(part))
        except ValueError as exc:
            raise ValueError(f"bad seed list {text!r}: use 42-51 or 42,43") from exc
    if not seeds:
        raise ValueError("no seeds given")
    return seeds


@dataclass(frozen=True)
class PolicySummary:
    """A policy over seeds: % GPUs allocated per arrival percentage (mean, sample std)."""

    policy: str
    seeds: tuple[int, ...]
    alloc_pct: dict[int, tuple[float, ...]]
    failed: tuple[int, ...]
    seconds: tuple[float, ...]

    def mean(self, pct: int) -> float:
        values = [v for v in self.alloc_pct[pct] if not math.isnan(v)]
        return statistics.fmean(values) if values else math.nan

    def std(self, pct: int) -> float:
        values = [v for v in self.alloc_pct[pct] if not math.isnan(v)]
        return statistics.stdev(values) if len(values) > 1 else math.nan

    def as_dict(self) -> dict[str, Any]:
        """Returns: a JSON-ready dict; a figure with no arrival near it is null."""
        return {
            "policy": self.policy,
            "seeds": list(self.seeds),
            "alloc_pct": {
                str(p): {
                    "mean": _finite(self.mean(p)),
                    "std": _finite(self.std(p)),
                    "per_seed": [_finite(x) for x in v],
                }
                for p, v in self.alloc_pct.items()
            },
            "failed_pods": list(self.failed),
            "seconds": list(self.seconds),
        }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def summarize(results: Sequence[ReplayResult], pcts: Sequence[int]) -> list[PolicySummary]:
    """Returns: one summary per policy, in the order the policies first appear."""
    by_policy: dict[str, list[ReplayResult]] = {}
    for r in results:
        by_policy.setdefault(r.policy, []).append(r)
    out = []
    for policy, unordered in by_policy.items():
        runs = sorted(unordered, key=lambda r: r.seed)
        out.append(
            PolicySummary(
                policy=policy,
                seeds=tuple(r.seed for r in runs),
                alloc_pct={p: tuple(r.alloc_pct_at(p) for r in runs) for p in pcts},
                failed=tuple(r.failed for r in runs),
                seconds=tuple(r.seconds for r in runs),
            )
        )
    return out


def _init(nodes: NodeTable, pods: PodTable) -> None:
    global _tables  # noqa: PLW0603 - a worker process' tables, set once by its initializer
    _tables = (nodes, pods)


def _run(policy: str, seed: int, ratio: float) -> ReplayResult:
    if _tables is None:
        raise RuntimeError("worker started without tables")
    return replay(_tables[0], _tables[1], policy, seed, ratio)


def run_replays(
    nodes: NodeTable,
    pods: PodTable,
    policies: Sequence[str],
    seeds: Sequence[int],
    ratio: float,
    workers: int = 1,
    on_done: Callable[[ReplayResult], None] | None = None,
) -> list[ReplayResult]:
    """Runs every (policy, seed) replay, in ``workers`` processes when more than one."""
    jobs = [(p, s) for p in policies for s in seeds]
    results: list[ReplayResult] = []
    if workers <= 1 or len(jobs) == 1:
        for policy, seed in jobs:
            results.append(replay(nodes, pods, policy, seed, ratio))
            if on_done is not None:
                on_done(results[-1])
        return results
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), initializer=_init, initargs=(nodes, pods)
    ) as pool:
        futures = [pool.submit(_run, p, s, ratio) for p, s in jobs]
        for future in as_completed(futures):
            results.append(future.result())
            if on_done is not None:
                on_done(results[-1])
    order = {job: n for n, job in enumerate(jobs)}
    return sorted(results, key=lambda r: order[(r.policy, r.seed)])
