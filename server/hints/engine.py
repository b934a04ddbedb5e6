"""The engine: ``rebalance(snapshot, policy, seed) -> hints`` and ``apply(snapshot, hints)``.

Stage: hints core, a pure function (DESIGN decision 8): no web framework, database or clock, so
the live server and the trace-replay simulator run the same code. Input: a ``Snapshot`` and a
``Policy``. Output: the admitted hints, in the order they are to be applied.

The kinds run in the policy's order (safety first: drain, relieve_hot; then reclaim_idle,
defragment, consolidate). Each proposes on the round's working state, best gain per move first;
the planner (``planner.Round.admit``) admits a hint only if it keeps every constraint after all
hints before it, and applies it, so later proposals see earlier ones. The seed only breaks ties
(a shuffled node order), so one seed gives one answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from server.hints import consolidate, defragment, drain, reclaim_idle, relieve_hot
from server.hints.hint import Hint, Kind
from server.hints.model import Snapshot
from server.hints.planner import Round
from server.hints.policy import Policy
from server.hints.state import WorkingState

Proposer = Callable[[Round], Iterator[Hint]]

PROPOSERS: dict[Kind, Proposer] = {
    Kind.DRAIN: drain.propose,
    Kind.RELIEVE_HOT: relieve_hot.propose,
    Kind.RECLAIM_IDLE: reclaim_idle.propose,
    Kind.DEFRAGMENT: defragment.propose,
    Kind.CONSOLIDATE: consolidate.propose,
}


def rebalance(snapshot: Snapshot, policy: Policy | None = None, seed: int = 0) -> list[Hint]:
    """Returns: the round's hints, each keeping every constraint after those before it."""
    return plan(snapshot, policy or Policy(), seed).accepted


def plan(snapshot: Snapshot, policy: Policy, seed: int = 0) -> Round:
    """Returns: the finished round (hints, budget spent, rejections counted by reason)."""
    round_ = Round(snapshot, policy, seed)
    for kind in policy.kinds:
        for hint in PROPOSERS[kind](round_):
            round_.admit(hint)
    return round_


def apply(snapshot: Snapshot, hints: Sequence[Hint]) -> Snapshot:
    """Returns: ``snapshot`` after every hint's moves, in order (``PlanError`` if one does not
    fit); the input is not changed."""
    state = WorkingState(snapshot)
    for hint in hints:
        state.apply_all(hint.actions)
    return state.to_snapshot()
