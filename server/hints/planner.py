"""The planner: admits hints one at a time against the round's constraints, and a checker.

Stage: hints planning. Each kind proposes hints on the round's working state; ``Round.admit``
takes a hint only when, applied after everything admitted before it:
- every moved pod is placed where the move says, preemptible, and moved once this round;
- a gang moves whole: a hint moving one member moves every placed member;
- the budget holds: moves per round, releases per round, moves per node;
- capacity holds on every target (CPU, memory, each GPU's share, model, health, schedulable).
An admitted hint is applied to the working state, so the next proposal sees it (KAI's
Consolidate commits a scenario only when every evicted pod has somewhere to go; Volcano reserves
the target before evicting: the same idea, simulated in memory).

``violations`` re-checks a finished plan from the original snapshot without the planner's
bookkeeping, for tests and for the simulator.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from server.hints.hint import Hint, Move
from server.hints.model import Pod, Snapshot
from server.hints.policy import Policy
from server.hints.state import PlanError, WorkingState


@dataclass
class Round:
    """One round's working state, budget spent and admitted hints."""

    snapshot: Snapshot
    policy: Policy
    seed: int = 0
    state: WorkingState = field(init=False)
    rng: random.Random = field(init=False)
    node_rank: dict[str, int] = field(init=False)
    moved: set[str] = field(default_factory=set)
    moves_used: int = 0
    releases_used: int = 0
    node_moves: Counter[str] = field(default_factory=Counter)
    accepted: list[Hint] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.state = WorkingState(self.snapshot)
        self.rng = random.Random(self.seed)  # noqa: S311 - breaks ties, no secret
        order = sorted(self.snapshot.node_by_name)
        self.rng.shuffle(order)
        self.node_rank = {name: rank for rank, name in enumerate(order)}

    @property
    def moves_left(self) -> int:
        return max(0, self.policy.max_moves_per_round - self.moves_used)

    @property
    def releases_left(self) -> int:
        return max(0, self.policy.max_releases_per_round - self.releases_used)

    def node_moves_left(self, node: str) -> int:
        cap = self.policy.max_moves_per_node
        return 1 << 30 if cap is None else max(0, cap - self.node_moves[node])

    def movable(self, pod: Pod) -> bool:
        """A pod the round may still move: preemptible, placed, not yet moved."""
        return (
            pod.preemptible and pod.id not in self.moved and self.state.node_of(pod.id) is not None
        )

    def gang_of(self, pod: Pod) -> tuple[Pod, ...]:
        """Returns: the placed pods that must move with ``pod`` (itself alone if no gang)."""
        if pod.gang is None:
            return (pod,)
        ids = self.snapshot.gang_members.get(pod.gang, (pod.id,))
        return tuple(self.snapshot.pod_by_id[i] for i in ids)

    def admit(self, hint: Hint) -> bool:
        """Applies ``hint`` to the working state if it keeps every constraint. Returns: taken."""
        problem = self._problem(hint)
        if problem is None:
            try:
                self.state.apply_all(hint.actions)
            except PlanError:
                problem = "capacity"
        if problem is not None:
            self.rejected[problem] += 1
            return False
        for move in hint.actions:
            self.moved.add(move.pod)
            if move.is_release:
                self.releases_used += 1
            else:
                self.moves_used += 1
                self.node_moves[move.from_node] += 1
                if move.to_node != move.from_node:
                    self.node_moves[move.to_node or ""] += 1
        self.accepted.append(hint)
        return True

    def _problem(self, hint: Hint) -> str | None:  # noqa: PLR0911 - one return per rule
        if hint.confidence < self.policy.min_confidence:
            return "confidence"
        pods = [m.pod for m in hint.actions]
        if len(set(pods)) != len(pods):
            return "pod twice"
        for move in hint.actions:
            pod = self.snapshot.pod_by_id.get(move.pod)
            if pod is None or not self.movable(pod):
                return "not movable"
            members = {p.id for p in self.gang_of(pod)}
            if not members <= set(pods):
                return "gang split"
        moves = [m for m in hint.actions if not m.is_release]
        if len(moves) > self.moves_left or len(hint.actions) - len(moves) > self.releases_left:
            return "budget"
        per_node: Counter[str] = Counter()
        for move in moves:
            per_node[move.from_node] += 1
            if move.to_node != move.from_node:
                per_node[move.to_node or ""] += 1
        if any(count > self.node_moves_left(node) for node, count in per_node.items()):
            return "node budget"
        return None


def violations(snapshot: Snapshot, hints: Sequence[Hint], policy: Policy) -> list[str]:
    """Returns: every constraint a plan breaks, applied in order from ``snapshot`` (none: [])."""
    found: list[str] = []
    state = WorkingState(snapshot)
    seen: set[str] = set()
    for hint in hints:
        hint_pods = {m.pod for m in hint.actions}
        for move in hint.actions:
            found += _move_problems(snapshot, hint, move, hint_pods, seen)
            try:
                state.apply(move)
            except PlanError as exc:
                found.append(f"{hint.id}: {exc}")
    found += _budget_problems(hints, policy)
    for name in snapshot.node_by_name:
        if state.cpu_free[name] < 0 or state.memory_free[name] < 0:
            found.append(f"node {name}: CPU or memory overcommitted")
        if any(free < 0 for free in state.gpu_free[name].values()):
            found.append(f"node {name}: a GPU overcommitted")
    return found


def _move_problems(
    snapshot: Snapshot, hint: Hint, move: Move, hint_pods: set[str], seen: set[str]
) -> list[str]:
    pod = snapshot.pod_by_id.get(move.pod)
    if pod is None:
        return [f"{hint.id}: unknown pod {move.pod}"]
    found = []
    if not pod.preemptible:
        found.append(f"{hint.id}: moves non-preemptible pod {pod.id}")
    if pod.id in seen:
        found.append(f"{hint.id}: moves pod {pod.id} a second time")
    seen.add(pod.id)
    if pod.gang is not None:
        missing = set(snapshot.gang_members.get(pod.gang, ())) - hint_pods
        if missing:
            found.append(f"{hint.id}: splits gang {pod.gang} (leaves {sorted(missing)})")
    return found


def _budget_problems(hints: Sequence[Hint], policy: Policy) -> list[str]:
    actions = [m for h in hints for m in h.actions]
    moves = [m for m in actions if not m.is_release]
    releases = len(actions) - len(moves)
    found = []
    if len(moves) > policy.max_moves_per_round:
        found.append(f"{len(moves)} moves over the budget of {policy.max_moves_per_round}")
    if releases > policy.max_releases_per_round:
        found.append(f"{releases} releases over the budget of {policy.max_releases_per_round}")
    cap = policy.max_moves_per_node
    if cap is not None:
        per_node: Counter[str] = Counter()
        for move in moves:
            per_node[move.from_node] += 1
            if move.to_node != move.from_node:
                per_node[move.to_node or ""] += 1
        found += [f"node {n}: {c} moves over {cap}" for n, c in sorted(per_node.items()) if c > cap]
    return found


def restart_of(snapshot: Snapshot, policy: Policy, moves: Sequence[Move]) -> float:
    """Returns: the restart seconds of ``moves`` (a pod's own estimate, else the policy's)."""
    total = 0.0
    for move in moves:
        own = snapshot.pod_by_id[move.pod].restart_s
        total += policy.restart_s if own is None else own
    return total
