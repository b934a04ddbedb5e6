"""Scenario S3, idle reclaim: GPU pods with measured activity, the engine asked every few minutes.

Stage: simulator scenario (reference §5.2, metric 5 of §5.3). Input: the trace tables, an
activity source and a seed. BestFit places the pods to 100 % of GPU capacity; every GPU pod gets
an activity series: one of the GenAI duty-cycle series drawn at random (semi-synthetic: real
utilization, pods of another cluster) or the synthetic ON/OFF model with idle share p. Time then
runs in steps (5 min); each step the activity of the minutes just past is read, and:

- **dcmon**: the cluster becomes a snapshot whose telemetry holds each running GPU pod's
  ``JobActivity`` (idle run under way, running time, earlier idle runs that resumed, duty
  cycle; from past minutes only), the engine runs its ``reclaim_idle`` kind, and its releases
  are applied through the simulator (a hint that does not fit is a violation);
- **culler**: the PAI-DSW idle culler (GPU < 10 % and CPU < 20 % for 30 minutes, reference
  §1.5). CPU utilization is not in the trace: it is taken as below 20 % whenever the GPU is
  idle, so the culler acts on GPU alone, the most reclaim it can make.

A released pod whose series shows activity again resumes: it is placed back at the next step
after a restart. Scores (``Score``), from the series themselves:
- idle-allocated GPU-hours: GPU share x minutes in runs below 5 % lasting 30 min or more;
- reclaimed: the part of those minutes during which the pod was released;
- false reclaims: releases after which the pod is active within 10 minutes;
- work lost: per resumed release, the share x (restart delay + active minutes since the last
  checkpoint, every 30 minutes of the job's time, before the release).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from server.hints.engine import plan
from server.hints.hint import Kind
from server.hints.model import Telemetry
from server.hints.policy import Policy as EnginePolicy
from server.hints.sim.activity import (
    IDLE_BELOW_PCT,
    Activity,
    ActivityTracker,
    long_idle,
    on_off,
)
from server.hints.sim.cluster import ClusterState
from server.hints.sim.replay import HookPoint, replay
from server.hints.sim.to_snapshot import apply_hints, pod_id, to_snapshot
from server.hints.sim.trace import MILLI, NodeTable, PodTable

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

STEP_MIN = 5
IDLE_MIN = 30
FALSE_WITHIN_MIN = 10
CHECKPOINT_MIN = 30
RESTART_S = 120.0
CULLER_GPU_PCT = 10.0
CULLER_MIN = 30
CULLER_LONG_MIN = 120  # a long wait: the fixed wait that keeps false reclaims near 5 % here
METHODS = ("dcmon", "culler", "culler-120")


class Release(NamedTuple):
    """Pod row ``row`` released at minute ``at`` (the start of the minutes not yet read)."""

    row: int
    at: int


@dataclass(frozen=True)
class Score:
    """One method's figures over one activity assignment. GPU-hours weigh time by GPU share."""

    idle_gpu_h: float
    reclaimed_gpu_h: float
    releases: int
    false_reclaims: int
    resumed: int
    lost_gpu_h: float

    @property
    def reclaimed_pct(self) -> float:
        return 100.0 * self.reclaimed_gpu_h / self.idle_gpu_h if self.idle_gpu_h else math.nan

    @property
    def false_pct(self) -> float:
        return 100.0 * self.false_reclaims / self.releases if self.releases else 0.0


def first_active_after(series: FloatArray, minute: int, below_pct: float = IDLE_BELOW_PCT) -> int:
    """Returns: the first minute at or after ``minute`` the series is active, -1 if none."""
    rest = series[minute:]
    with np.errstate(invalid="ignore"):
        hits = np.flatnonzero(rest >= below_pct)
    ended = np.flatnonzero(np.isnan(rest))
    if len(hits) == 0 or (len(ended) and ended[0] < hits[0]):
        return -1
    return minute + int(hits[0])


def score(
    releases: Sequence[Release],
    activity: Activity,
    shares: FloatArray,
    restart_s: float = RESTART_S,
) -> Score:
    """Scores releases against the series (a pod may be released several times)."""
    util = activity.util
    idle = long_idle(util, IDLE_MIN)
    idle_gpu_h = float((idle.sum(axis=1) * shares).sum()) / 60.0
    reclaimed = lost = 0.0
    false = resumed = 0
    for row, at in releases:
        back = first_active_after(util[row], at)
        end = back if back >= 0 else util.shape[1]
        reclaimed += float(idle[row, at:end].sum()) * shares[row] / 60.0
        if back < 0:
            continue
        resumed += 1
        false += back - at <= FALSE_WITHIN_MIN
        checkpoint = (at // CHECKPOINT_MIN) * CHECKPOINT_MIN
        with np.errstate(invalid="ignore"):
            unsaved_min = int((util[row, checkpoint:at] >= IDLE_BELOW_PCT).sum())
        lost += shares[row] * (restart_s / 3600.0 + unsaved_min / 60.0)
    return Score(idle_gpu_h, reclaimed, len(releases), false, resumed, lost)


def culler_picks(tracker: ActivityTracker, candidates: IntArray, idle_min: int) -> IntArray:
    """Returns: the candidate rows whose GPU has been below the culler's threshold for
    ``idle_min`` minutes (the tracker runs at that threshold)."""
    picked: IntArray = candidates[tracker.idle_run[candidates] >= idle_min]
    return picked


@dataclass
class _Method:
    name: str
    released: dict[int, int] = field(default_factory=dict)  # row -> minute released
    releases: list[Release] = field(default_factory=list)
    violations: int = 0


@dataclass(frozen=True)
class S3Run:
    """One (activity, seed): both methods' scores on the same placement and series."""

    activity: str
    seed: int
    gpu_pods: int
    scores: dict[str, Score]
    bound_pct: float
    violations: int
    engine_s_per_round: float
    rounds: int
    seconds: float


def placed_cluster(nodes: NodeTable, pods: PodTable, seed: int) -> ClusterState:
    """Returns: the cluster after BestFit placed the arrivals up to 100 % of GPU capacity."""
    held: list[ClusterState] = []

    def keep(state: ClusterState, _: HookPoint) -> None:
        held.append(state)

    replay(nodes, pods, "bestfit", seed, 1.0, hooks={0.0: keep})
    return held[0]


def activity_for(
    source: str, count: int, rng: np.random.Generator, genai: Activity | None
) -> Activity:
    """Returns: ``count`` series: ``genai`` rows drawn with replacement, or ``onoff-<p>``."""
    if source == "genai":
        if genai is None:
            raise ValueError("the genai activity needs the duty-cycle series")
        return genai.take(rng.integers(genai.util.shape[0], size=count).astype(np.int64))
    if source.startswith("onoff-"):
        minutes = genai.minutes if genai is not None else 24 * 60
        return on_off(count, minutes, float(source.removeprefix("onoff-")), rng)
    raise ValueError(f"unknown activity {source!r}")


def run_s3(
    nodes: NodeTable,
    pods: PodTable,
    source: str,
    seed: int,
    genai: Activity | None = None,
    step_min: int = STEP_MIN,
    minutes: int | None = None,
    engine: EnginePolicy | None = None,
    culler_min: int = CULLER_MIN,
    long_culler_min: int = CULLER_LONG_MIN,
) -> S3Run:
    """Runs S3 for one activity source and seed, the engine (``engine``: its policy, the
    default one if None; only ``reclaim_idle`` runs, without release caps) and the culler
    waiting ``culler_min`` minutes and the same culler waiting ``long_culler_min`` minutes
    (``culler-120``: the culler's wait raised until its false reclaims come near the bar) side
    by side."""
    started = time.perf_counter()
    state = placed_cluster(nodes, pods, seed)
    instances = np.array(
        [k for k in range(state.instance_count)
         if state.node_of(k) is not None and state.pods.num_gpu[state.pod_of(k)] > 0],
        dtype=np.int64,
    )  # fmt: skip
    shares = np.array([state.pods.gpu_milli_total[state.pod_of(int(k))] / MILLI for k in instances])
    rng = np.random.default_rng(seed)
    activity = activity_for(source, len(instances), rng, genai)
    if minutes is not None:
        activity = Activity(activity.util[:, :minutes], activity.labels)
    policy = replace(
        engine or EnginePolicy(),
        kinds=(Kind.RECLAIM_IDLE,),
        max_releases_per_round=len(instances),
        max_moves_per_round=0,
    )
    seen = ActivityTracker(activity, report_gaps_from_min=int(policy.idle_threshold_s // 60))
    quiet = ActivityTracker(activity, below_pct=CULLER_GPU_PCT)
    dcmon, culler = _Method("dcmon"), _Method("culler")
    cullers = ((culler, culler_min), (_Method("culler-120"), long_culler_min))
    origin = {int(r): (state.node_of(int(k)), state.gpus_of(int(k)))
              for r, k in enumerate(instances)}  # fmt: skip
    row_of = {int(k): r for r, k in enumerate(instances)}
    engine_s, rounds, gone = 0.0, 0, np.zeros(len(instances), dtype=np.bool_)
    for now in range(step_min, activity.minutes + step_min, step_min):
        back = seen.advance(now)
        quiet.advance(now)
        for method in (dcmon, *(c for c, _ in cullers)):
            for row in [r for r in method.released if back[r] >= 0]:
                del method.released[row]
                if method is dcmon and not seen.ended[row]:
                    node, gpus = origin[row]
                    assert node is not None
                    state.place(int(instances[row]), node, gpus)
        for ended in (int(r) for r in np.flatnonzero(seen.ended & ~gone)):
            gone[ended] = True
            if state.node_of(int(instances[ended])) is not None:
                state.evict(int(instances[ended]))  # the job ended
        if now >= activity.minutes:
            break
        live = np.flatnonzero(~seen.ended)
        running = [int(r) for r in live if int(r) not in dcmon.released]
        jobs = tuple(seen.job_activity(r, pod_id(int(instances[r]))) for r in running)
        # every job's activity feeds the resume-risk estimate; only pods idle long enough to
        # be released can get a hint, so only they go in as pods (the rest cannot matter)
        wait_min = policy.idle_threshold_s / 60.0
        asked = [int(instances[r]) for r in running if seen.idle_run[r] >= wait_min]
        view = to_snapshot(state, telemetry=Telemetry(jobs=jobs), now_s=60.0 * now, instances=asked)
        tick = time.perf_counter()
        round_ = plan(view.snapshot, policy, seed)
        engine_s += time.perf_counter() - tick
        rounds += 1
        applied = apply_hints(state, view, round_.accepted, max_moves=0,
                              max_releases=len(instances))  # fmt: skip
        dcmon.violations += len(applied.violations)
        for k in applied.released:
            hit = row_of.get(k)
            if hit is None:
                dcmon.violations += 1  # released a pod without activity: not the kind's job
                continue
            dcmon.released[hit] = now
            dcmon.releases.append(Release(hit, now))
        _cull(cullers, quiet, live, now)
    methods = (dcmon, *(c for c, _ in cullers))
    scores = {m.name: score(m.releases, activity, shares) for m in methods}
    return S3Run(
        activity=source,
        seed=seed,
        gpu_pods=len(instances),
        scores=scores,
        bound_pct=hindsight_bound(activity, shares, IDLE_MIN),
        violations=dcmon.violations,
        engine_s_per_round=engine_s / rounds if rounds else math.nan,
        rounds=rounds,
        seconds=time.perf_counter() - started,
    )


def _cull(
    cullers: Sequence[tuple[_Method, int]], quiet: ActivityTracker, live: IntArray, now: int
) -> None:
    """Each culler releases the live pods idle at least its wait that it has not released."""
    for method, wait in cullers:
        candidates = np.array([r for r in live if int(r) not in method.released], dtype=np.int64)
        for row in culler_picks(quiet, candidates, wait):
            method.released[int(row)] = now
            method.releases.append(Release(int(row), now))


def hindsight_bound(activity: Activity, shares: FloatArray, threshold_min: int) -> float:
    """Returns: % of idle-allocated GPU-hours a reclaimer waiting ``threshold_min`` minutes
    could reclaim at best (it knows which idle runs last): each run's part past the wait."""
    idle = long_idle(activity.util, IDLE_MIN).astype(np.int64)
    total = float((idle.sum(axis=1) * shares).sum())
    if not total:
        return math.nan
    # minutes into the current run, per minute; the part past ``threshold_min`` is reclaimable
    run = np.zeros(idle.shape[0], dtype=np.int64)
    past = np.zeros(idle.shape[0], dtype=np.int64)
    for m in range(idle.shape[1]):
        run = np.where(idle[:, m] > 0, run + 1, 0)
        past += run > threshold_min
    return 100.0 * float((past * shares).sum()) / total
