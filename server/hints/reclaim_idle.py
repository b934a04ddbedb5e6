"""reclaim_idle: allocated GPUs idle beyond a threshold, never for a job between phases.

Stage: hints kind. Input: per-pod activity (GPU and CPU utilization over the window, the idle
run under way, the idle gaps that ended in activity before, the duty cycle). A pod is idle as
the PAI-DSW culler counts it: GPU below ``idle_gpu_util_pct`` and CPU below
``idle_cpu_util_pct``, for at least ``idle_threshold_s``. Output: a ``release`` hint (suspend
or requeue: its GPUs go back to the pool), one per pod or per gang when every member is idle.

A false reclaim (the job wanted its GPUs back minutes later) is the costly error, so the
clock alone never decides. With enough idle runs on record in the snapshot (at least
``resume_min_runs`` of ``idle_threshold_s`` or longer, from every job), a survival estimate
(``resume_risk``) gives the risk that a job idle this long becomes active within
``resume_horizon_s``, its own earlier runs weighed in; the pod is released only when the upper
bound of that risk is at most ``max_resume_risk``, with confidence 1 - that bound.

With too little history for an estimate (a new fleet, the demo), a rule of thumb:
- a pod whose idle run is within ``resume_margin`` x its longest earlier gap that ended in
  activity is between phases: no hint;
- a pod that has resumed before but is idle far longer now (a notebook left open): at most
  ``interactive_confidence``, lower the closer the run is to its usual gaps;
- a pod never active since it started: ``abandoned_confidence``;
- a pod active once, idle since, no gap on record: ``finished_confidence``;
then scaled by how far past the threshold the run is, and by 1 - duty cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from server.hints.hint import Evidence, Gain, Hint, Kind, Move, Remedy, Subject, make_hint
from server.hints.model import JobActivity, Pod
from server.hints.planner import Round, restart_of
from server.hints.policy import Policy
from server.hints.resume_risk import ResumeModel

SINCE_START_SLACK_S = 60.0  # an idle run this close to the running time counts as "since start"


def is_idle(activity: JobActivity, policy: Policy) -> bool:
    return (
        activity.gpu_util_pct < policy.idle_gpu_util_pct
        and activity.cpu_util_pct < policy.idle_cpu_util_pct
        and activity.idle_s >= policy.idle_threshold_s
    )


def confidence(activity: JobActivity, policy: Policy) -> tuple[float, str]:
    """Returns: how sure a release is right (0: it is between phases), and why."""
    idle, gaps = activity.idle_s, activity.resumed_gaps_s
    ramp = min(1.0, idle / (2 * policy.idle_threshold_s))
    if gaps:
        usual = max(gaps)
        if idle <= policy.resume_margin * usual:
            return 0.0, f"between phases: idle gaps up to {usual / 60:g} min have ended in work"
        base = policy.interactive_confidence * (1 - policy.resume_margin * usual / idle)
        why = (
            f"resumed after {len(gaps)} earlier idle gaps (longest {usual / 60:g} min), so it"
            " may resume again: low confidence"
        )
    elif activity.running_s - idle <= SINCE_START_SLACK_S:
        base, why = policy.abandoned_confidence, "no activity since it started"
    else:
        base, why = policy.finished_confidence, "active once, idle since, no resumed gap"
    duty = 1.0 - (activity.duty_cycle or 0.0)
    return base * ramp * duty, why


def resume_model(activities: Iterable[JobActivity], policy: Policy) -> ResumeModel | None:
    """Returns: the fleet's idle-run survival curve from every job's runs, or None when fewer
    than ``resume_min_runs`` runs are long enough to say anything."""
    jobs = tuple(activities)
    model = ResumeModel.fit(
        (gap for a in jobs for gap in a.resumed_gaps_s),
        (a.idle_s for a in jobs if a.idle_s > 0),
        policy.idle_threshold_s,
    )
    return model if model.runs() >= policy.resume_min_runs else None


def judged(activity: JobActivity, model: ResumeModel | None, policy: Policy) -> tuple[float, str]:
    """Returns: how sure a release is right (0: not to be released), and why: from the
    survival estimate when there is one, else from the rule of thumb."""
    if model is None:
        sure, why = confidence(activity, policy)
        return sure, f"{why} (too few idle runs on record for an estimate)"
    risk = model.risk(
        activity.idle_s,
        policy.resume_horizon_s,
        activity.resumed_gaps_s,
        policy.resume_prior_weight,
        policy.resume_z,
    )
    horizon = f"{policy.resume_horizon_s / 60:g} min"
    evidence = (
        f"of {risk.at_risk} idle runs on record that lasted this long, {risk.estimate:.0%}"
        f" ended within {horizon}" + (f"; {risk.own_runs} of its own did" if risk.own_runs else "")
    )
    if risk.upper > policy.max_resume_risk:
        return 0.0, f"may resume: {evidence} (risk up to {risk.upper:.0%})"
    return 1.0 - risk.upper, f"{evidence}: risk of resuming at most {risk.upper:.0%}"


def propose(round_: Round) -> Iterator[Hint]:
    """Yields release hints, the most GPU-hours times confidence first."""
    snapshot, policy = round_.snapshot, round_.policy
    model = resume_model(snapshot.telemetry.jobs, policy)
    found: list[tuple[float, Hint]] = []
    done: set[str] = set()
    for pod in sorted(snapshot.pods, key=lambda p: p.id):
        if pod.id in done or pod.node is None or pod.request.num_gpu == 0:
            continue
        group = round_.gang_of(pod)
        done.update(p.id for p in group)
        activities = [snapshot.activity.get(p.id) for p in group]
        if any(a is None or not is_idle(a, policy) for a in activities):
            continue
        scored = [(judged(a, model, policy), a) for a in activities if a is not None]
        (sure, why), activity = min(scored, key=lambda item: item[0][0])
        if sure <= 0 or not all(round_.movable(p) for p in group):
            continue
        hint = _hint(round_, group, activity, sure, why)
        found.append((-hint.gain.gpu_hours * hint.confidence, hint))
    found.sort(key=lambda item: (item[0], item[1].id))
    for _, hint in found:
        yield hint


def _hint(
    round_: Round, group: tuple[Pod, ...], activity: JobActivity, sure: float, why: str
) -> Hint:
    policy = round_.policy
    moves = tuple(Move(p.id, p.node or "", None, p.gpus, ()) for p in group if p.node is not None)
    gpus = sum(p.request.num_gpu * p.request.gpu_milli for p in group) / 1000
    first = group[0]
    w = activity.window_s
    evidence = (
        Evidence("DCGM_FI_DEV_GPU_UTIL", w, activity.gpu_util_pct, policy.idle_gpu_util_pct,
                 node=first.node, pod=first.id),
        Evidence("snapshot:job_cpu_util_pct", w, activity.cpu_util_pct, policy.idle_cpu_util_pct,
                 pod=first.id),
        Evidence("snapshot:job_idle_s", activity.idle_s, activity.idle_s, policy.idle_threshold_s,
                 pod=first.id),
        Evidence("snapshot:job_longest_resumed_gap_s", activity.running_s,
                 max(activity.resumed_gaps_s, default=0.0), None, pod=first.id),
    )  # fmt: skip
    text = (
        f"pod {first.id}{' and its gang' if len(group) > 1 else ''} idle"
        f" {activity.idle_s / 3600:.1f} h (GPU {activity.gpu_util_pct:g} %, CPU"
        f" {activity.cpu_util_pct:g} %): {why}; release its {gpus:g} GPUs"
    )
    return make_hint(
        Kind.RECLAIM_IDLE,
        Subject(node=first.node, pod=first.id),
        Remedy.RELEASE,
        moves,
        evidence,
        Gain(gpus_usable=gpus, gpu_hours=gpus * policy.gain_horizon_s / 3600),
        restart_of(round_.snapshot, policy, moves),
        sure,
        text,
    )
