"""Properties of the engine over random clusters: no plan breaks a constraint, whatever the
kinds propose; plans keep allocation and never raise fragmentation; one seed, one answer.

Each property is shown able to fail: with the planner's checks switched off, hypothesis finds
a plan that breaks a constraint.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from server.hints.engine import apply, plan, rebalance
from server.hints.fragment import FragMeter, demand_shapes
from server.hints.hint import Hint, Kind
from server.hints.model import MILLI, JobActivity, Snapshot, Telemetry
from server.hints.planner import Round, violations
from server.hints.policy import Policy
from server.hints.state import WorkingState
from tests.server.hints.builders import cluster, gpu_node, pod
from tests.server.hints.strategies import policies, proposals, snapshots

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def capacity_problems(before: Snapshot, hints: list[Hint]) -> list[str]:
    """Capacity recomputed from requests alone, without the engine's working state."""
    cpu = {n.name: n.cpu_milli_free for n in before.nodes}
    memory = {n.name: n.memory_mib_free for n in before.nodes}
    gpu = {(n.name, g.index): g.free_milli for n in before.nodes for g in n.gpus}
    healthy = {(n.name, g.index): not g.failures for n in before.nodes for g in n.gpus}
    found = []
    for hint in hints:
        for move in hint.actions:
            r = before.pod_by_id[move.pod].request
            cpu[move.from_node] += r.cpu_milli
            memory[move.from_node] += r.memory_mib
            for i in move.from_gpus:
                gpu[(move.from_node, i)] += r.gpu_milli
            if move.to_node is None:
                continue
            cpu[move.to_node] -= r.cpu_milli
            memory[move.to_node] -= r.memory_mib
            for i in move.to_gpus:
                gpu[(move.to_node, i)] -= r.gpu_milli
                if not healthy[(move.to_node, i)]:
                    found.append(f"{move.pod} onto failing GPU {move.to_node}/{i}")
            if len(set(move.to_gpus)) != r.num_gpu:
                found.append(f"{move.pod} holds {move.to_gpus}")
            if any(v < 0 for v in (cpu[move.to_node], memory[move.to_node])) or any(
                gpu[(move.to_node, i)] < 0 for i in move.to_gpus
            ):
                found.append(f"{move.pod} overcommits {move.to_node}")
    return found


@FAST
@given(snapshots(), policies, st.integers(0, 3))
def test_no_plan_breaks_a_constraint(snapshot: Snapshot, policy: Policy, seed: int) -> None:
    hints = rebalance(snapshot, policy, seed)
    assert violations(snapshot, hints, policy) == []
    assert capacity_problems(snapshot, hints) == []
    assert all(h.confidence >= policy.min_confidence for h in hints)


@FAST
@given(st.data(), policies)
def test_whatever_is_proposed_the_admitted_plan_keeps_every_constraint(
    data: st.DataObject, policy: Policy
) -> None:
    snapshot = data.draw(snapshots())
    round_ = Round(snapshot, policy)
    for hint in data.draw(proposals(snapshot)):
        round_.admit(hint)
    assert violations(snapshot, round_.accepted, policy) == []
    assert capacity_problems(snapshot, round_.accepted) == []


def allocated(snapshot: Snapshot) -> int:
    return sum(n.gpu_milli_allocated for n in snapshot.nodes)


@FAST
@given(snapshots(), policies, st.integers(0, 3))
def test_a_plan_lowers_allocation_only_by_its_releases(
    snapshot: Snapshot, policy: Policy, seed: int
) -> None:
    hints = rebalance(snapshot, policy, seed)
    released = sum(
        snapshot.pod_by_id[m.pod].request.gpu_milli_total
        for h in hints
        for m in h.actions
        if m.is_release
    )
    assert allocated(apply(snapshot, hints)) == allocated(snapshot) - released


def fragment(snapshot: Snapshot, policy: Policy) -> float:
    meter = FragMeter(demand_shapes(snapshot, policy.defrag_typical_popularity))
    state = WorkingState(snapshot)
    return sum(meter.node_frag(state, n) for n in state.nodes)


@FAST
@given(snapshots(), policies, st.integers(0, 3))
def test_defragment_never_raises_the_fragment_of_the_pending_mix(
    snapshot: Snapshot, policy: Policy, seed: int
) -> None:
    only = Policy(**{**policy.__dict__, "kinds": (Kind.DEFRAGMENT,)})
    hints = rebalance(snapshot, only, seed)
    after = apply(snapshot, hints)
    gained = sum(h.gain.gpus_usable for h in hints) * MILLI
    assert fragment(after, only) == pytest.approx(fragment(snapshot, only) - gained, abs=1e-6)
    assert gained >= len(hints) * only.defrag_min_gain_milli - 1e-6


@settings(max_examples=60, deadline=None)
@given(snapshots(), policies, st.integers(0, 3))
def test_one_seed_one_answer_and_apply_changes_nothing_it_is_given(
    snapshot: Snapshot, policy: Policy, seed: int
) -> None:
    kept = copy.deepcopy(snapshot)
    first = rebalance(snapshot, policy, seed)
    assert rebalance(copy.deepcopy(snapshot), policy, seed) == first
    apply(snapshot, first)
    assert snapshot == kept


def test_a_planner_without_its_checks_fails_the_constraint_property(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The properties can fail: with ``Round._problem`` switched off, hypothesis finds a
    proposal the admitted plan breaks a constraint with (gang, budget, preemptibility)."""
    monkeypatch.setattr(Round, "_problem", lambda self, hint: None)

    def broken(case: tuple[Snapshot, Policy, list[Hint]]) -> bool:
        snapshot, policy, hints = case
        round_ = Round(snapshot, policy)
        for hint in hints:
            round_.admit(hint)
        return violations(snapshot, round_.accepted, policy) != []

    cases = st.tuples(snapshots(), policies).flatmap(
        lambda sp: st.tuples(st.just(sp[0]), st.just(sp[1]), proposals(sp[0]))
    )
    snapshot, policy, hints = find(
        cases, broken, settings=settings(max_examples=2000, database=None)
    )
    assert violations(snapshot, hints, policy)


def test_a_planner_without_its_checks_lets_the_engine_overspend_its_release_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kinds lean on the planner for the release budget: three idle pods, one release."""
    snapshot = cluster(
        [gpu_node("a")],
        [pod(f"p{i}", "a", gpus=(i,)) for i in range(3)],
        telemetry=Telemetry(
            jobs=tuple(JobActivity(f"p{i}", 600, 0, 0, 3 * 3600, 3 * 3600) for i in range(3))
        ),
    )
    policy = Policy(max_releases_per_round=1)
    assert len(rebalance(snapshot, policy)) == 1
    monkeypatch.setattr(Round, "_problem", lambda self, hint: None)
    hints = plan(snapshot, policy).accepted
    assert len(hints) == 3
    assert violations(snapshot, hints, policy) == ["3 releases over the budget of 1"]
