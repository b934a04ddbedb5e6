"""Thresholds and budgets of the hint engine, each default with its reason.

Stage: hints configuration. One frozen ``Policy`` is passed to ``engine.rebalance``; the live
server reads it from settings, the simulator sets the budget of each scenario (for example 1, 5
or 10 % of pods for static defragmentation). Prior art cited here is summarised in the project's
rebalancing reference (§1): the Kubernetes descheduler, Volcano's descheduler, KAI's Consolidate
action, Slurm power saving and the PAI-DSW idle culler.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from server.hints.hint import Kind
from server.hints.model import FailureKind


class PolicyError(ValueError):
    """A policy value out of its range."""


DEFAULT_FAILURE_CONFIDENCE: tuple[tuple[FailureKind, float], ...] = (
    (FailureKind.FATAL_XID, 0.95),
    (FailureKind.GPU_LOST, 0.95),
    (FailureKind.ECC_UNCORRECTABLE, 0.9),
    (FailureKind.ROW_REMAP_FAILURE, 0.9),
    (FailureKind.BENCH_FAILED, 0.8),
    (FailureKind.BENCH_FLEET_OUTLIER, 0.6),
)


@dataclass(frozen=True)
class Policy:
    """The engine's knobs. Times in seconds, utilization in percent, shares in 0..1."""

    # -- budget (descheduler ``maxNoOfPodsToEvictTotal`` / ``evictionLimits.node``) -------------
    max_moves_per_round: int = 20
    """Moves (not releases) per round. An operator reviews each hint; 20 in a 5-minute round is
    more than a person acts on. The simulator raises it to its scenario's budget."""
    max_moves_per_node: int | None = None
    """Pods moved off or onto one node per round; None: no cap. The descheduler's
    ``evictionLimits.node`` (PR #1642) is the prior art; off by default because freeing one
    stranded node often takes several small moves."""
    max_releases_per_round: int = 50
    """Idle pods released per round (reclaim_idle); counted apart from moves because a release
    needs no target."""
    kinds: tuple[Kind, ...] = (
        Kind.DRAIN,
        Kind.RELIEVE_HOT,
        Kind.RECLAIM_IDLE,
        Kind.DEFRAGMENT,
        Kind.CONSOLIDATE,
    )
    """Kinds run, in this order: safety first (failing, then hot GPUs), then capacity."""
    min_confidence: float = 0.2
    """Hints less sure than this are not emitted."""

    # -- costs ---------------------------------------------------------------------------------
    restart_s: float = 120.0
    """Restart delay of a moved pod (the benchmark's default migration cost, reference §5.2)."""
    gain_horizon_s: float = 3600.0
    """GPU-hour gains are counted over this horizon (one hour of the freed capacity)."""

    # -- defragment ----------------------------------------------------------------------------
    defrag_min_gain_milli: float = 50.0
    """A move must cut the expected fragment (FGD's measure, milli-GPUs weighted by the pending
    mix) by at least this much: 5 % of a GPU, so no restart is spent on noise."""
    defrag_candidates: int = 400
    """Pods examined as move candidates per pass (most fragment freed on removal first); bounds
    the round's run time on a 1,000-node cluster."""
    defrag_typical_popularity: float = 0.95
    """Without pending demand, the shapes of placed pods covering this share of them stand for
    demand (FGD's typical pods, 95 %)."""

    # -- reclaim_idle (PAI-DSW idle culler: GPU < 10 % and CPU < 20 %; reference §1.5) ----------
    idle_gpu_util_pct: float = 10.0
    """A pod is idle while its GPU utilization stays below this (the culler's example value)."""
    idle_cpu_util_pct: float = 20.0
    """... and its CPU utilization below this (both must hold, as in the culler)."""
    idle_threshold_s: float = 1800.0
    """Idle this long before reclaim is considered (the culler's 30 minutes)."""
    resume_horizon_s: float = 600.0
    """A release is false when the job is active again within this long (the benchmark's
    10 minutes): the horizon of the resume-risk estimate."""
    max_resume_risk: float = 0.05
    """Release only when the upper bound of the risk of resuming within the horizon is at most
    this: the false-reclaim rate an operator accepts (the benchmark's bar, 5 %)."""
    resume_prior_weight: float = 3.0
    """Weight of the fleet's estimate against a job's own earlier idle runs, in runs."""
    resume_z: float = 1.645
    """The upper bound's z (one-sided 95 %)."""
    resume_min_runs: int = 20
    """Idle runs of ``idle_threshold_s`` or longer needed on record (any job) for the estimate;
    below it the rule of thumb decides."""
    resume_margin: float = 3.0
    """Rule of thumb (too few runs on record): a pod whose idle run is within
    ``resume_margin`` x its longest idle gap that later ended in activity is between phases,
    not abandoned: no hint. 3x because gaps vary: the GenAI
    duty-cycle trace has 0 %-runs of 30, 60 and 120 minutes in the same pods."""
    interactive_confidence: float = 0.3
    """Highest confidence for a pod that has resumed after idling before (a notebook): it may
    resume again, and a false reclaim costs the user their session."""
    abandoned_confidence: float = 0.9
    """Confidence for a pod idle since start, a threshold's length at least."""
    finished_confidence: float = 0.6
    """Confidence for a pod active once and idle since, with no resumed gap on record."""

    # -- relieve_hot ---------------------------------------------------------------------------
    hot_margin_celsius: float = 5.0
    """Hot within this many degrees below the GPU's slowdown temperature."""
    default_slowdown_celsius: float = 90.0
    """Slowdown temperature when the GPU does not report one (data-center parts sit near
    87-92 °C)."""
    throttle_share: float = 0.2
    """A thermal or power clock-event reason holding the clocks down this share of the window
    counts as throttling (windows, not instants: descheduler #1092's review)."""

    # -- drain ---------------------------------------------------------------------------------
    failure_confidence: tuple[tuple[FailureKind, float], ...] = DEFAULT_FAILURE_CONFIDENCE
    """Confidence per failure: hardware faults near certain, a fleet outlier only suggestive."""

    # -- consolidate (descheduler HighNodeUtilization, KAI Consolidate, Slurm power saving) ----
    consolidate_below_share: float = 0.4
    """A node whose allocated GPU share is below this is a consolidation source (the
    HighNodeUtilization variant ``{nvidia.com/gpu: 40}`` of the benchmark, reference §5.4)."""
    consolidate_max_util_pct: float = 30.0
    """... and whose allocated GPUs' measured utilization is below this (low-utilization work).
    Without telemetry the request share alone decides."""
    consolidate_keep_free_gpus: int = 0
    """Whole free GPUs to keep on schedulable nodes after consolidating (a floor for arrivals)."""
    host_idle_watts: float = 250.0
    """Draw of an idle GPU server without its GPUs, saved when it is powered down."""
    gpu_idle_watts: float = 60.0
    """Draw of an idle GPU when no measured power is in the window."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise PolicyError(f"{f.name} must not be negative: {value}")
        for name in ("min_confidence", "interactive_confidence", "abandoned_confidence"):
            if getattr(self, name) > 1:
                raise PolicyError(f"{name} is a confidence in 0..1")
        if not 0 < self.defrag_typical_popularity <= 1:
            raise PolicyError("defrag_typical_popularity is a share in (0, 1]")
        if self.max_resume_risk > 1:
            raise PolicyError("max_resume_risk is a share in 0..1")

    def confidence_of(self, kind: FailureKind) -> float:
        return dict(self.failure_confidence).get(kind, 0.5)
