"""A job's activity from its GPUs' utilization history: the idle run under way, the idle gaps
that ended in work, and its duty cycle.

Stage: rebalancing (server), pure: numbers in, ``server.hints.model.JobActivity`` out. Input:
the utilization of each of the job's GPUs on a step grid (``UtilGrid``: step ``k`` is the mean
of ``DCGM_FI_DEV_GPU_UTIL`` over ``(end_k - step, end_k]``, NaN where nothing was reported),
when the job started and the snapshot's clock. The live snapshot fills the grid with one range
query for all GPUs (``snapshot_telemetry``); tests fill it by hand.

Rules:
- a step counts only if it ends after the job started and not after ``now`` (no future
  sample is ever read);
- the job is active in a step when any of its GPUs is at or above the idle threshold (the
  policy's ``idle_gpu_util_pct``: one busy GPU means the job works), idle when all known ones
  are below it; a step with no GPU known neither starts nor ends a run;
- ``idle_s`` is the idle run at the end of the grid, from its first step's start to ``now``
  (the state of the last full step is taken to hold until ``now``);
- ``resumed_gaps_s`` are the earlier idle runs that the next active run ended: the learned
  duty cycle that keeps the engine from reclaiming a job between phases;
- ``duty_cycle`` is the share of known time the job was active; ``gpu_util_pct`` the mean over
  its GPUs and the last ``window_s``.

History older than the grid is unknown: an idle run that began before it counts from the
grid's start, so ``idle_s`` is never more than was seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from server.hints.model import JobActivity

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class UtilGrid:
    """GPU utilization on a step grid: ``ends_s`` ascending step ends (Unix seconds), each
    step ``step_s`` long; ``util_pct`` one row per GPU, NaN where the GPU reported nothing."""

    step_s: float
    ends_s: FloatArray
    util_pct: FloatArray  # shape (GPUs, steps)

    def __post_init__(self) -> None:
        if self.util_pct.ndim != 2 or self.util_pct.shape[1] != len(self.ends_s):
            raise ValueError("util_pct needs one row per GPU and one column per step")


@dataclass(frozen=True)
class Run:
    """A stretch of steps in one state, from ``start_s`` to ``end_s``."""

    idle: bool
    start_s: float
    end_s: float

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


def runs(
    grid: UtilGrid, started_at_s: float, now_s: float, idle_below_pct: float
) -> tuple[list[Run], float, float]:
    """Returns: the job's runs in time order, and its active and known seconds."""
    ends = grid.ends_s
    usable = (ends > started_at_s) & (ends <= now_s)
    util = grid.util_pct[:, usable]
    ends = ends[usable]
    known = ~np.isnan(util)
    any_known = [bool(k) for k in np.asarray(known.any(axis=0), dtype=bool)]
    peak = np.where(known, util, -np.inf).max(axis=0, initial=-np.inf)
    found: list[Run] = []
    active_s = known_s = 0.0
    for end, is_known, value in zip(ends.tolist(), any_known, peak.tolist(), strict=True):
        if not is_known:
            continue
        start = max(end - grid.step_s, started_at_s)
        idle = value < idle_below_pct
        known_s += end - start
        if not idle:
            active_s += end - start
        if found and found[-1].idle == idle:
            found[-1] = Run(idle, found[-1].start_s, end)
        else:
            found.append(Run(idle, start, end))
    return found, active_s, known_s


def job_activity(
    pod: str,
    grid: UtilGrid,
    started_at_s: float,
    now_s: float,
    window_s: float,
    idle_below_pct: float,
    cpu_util_pct: float = 0.0,
) -> JobActivity | None:
    """Returns: the job's activity, or None when none of its GPUs reported in the window
    (missing is absent: the engine then has nothing to reclaim on)."""
    ends = grid.ends_s
    in_window = (ends > max(now_s - window_s, started_at_s)) & (ends <= now_s)
    recent = grid.util_pct[:, in_window]
    if recent.size == 0 or np.isnan(recent).all():
        return None
    found, active_s, known_s = runs(grid, started_at_s, now_s, idle_below_pct)
    idle_s = now_s - found[-1].start_s if found and found[-1].idle else 0.0
    gaps = tuple(run.length_s for run, after in pairwise(found) if run.idle and not after.idle)
    return JobActivity(
        pod=pod,
        window_s=window_s,
        gpu_util_pct=round(float(np.nanmean(recent)), 3),
        cpu_util_pct=cpu_util_pct,
        idle_s=idle_s,
        running_s=max(now_s - started_at_s, 0.0),
        resumed_gaps_s=gaps,
        duty_cycle=active_s / known_s if known_s > 0 else None,
    )
