"""A rule group's run in the evaluator: its schedule, state and per-rule status. Plain data.

Stage: alerting. Slots are ``interval`` apart, aligned to the epoch with a per-group phase (a
hash of the group's key), so every replica computes the same evaluation times. ``carry``
moves what a reload keeps from a group's old run into its new one: the state and status of
each rule whose key (``ruleset.rule_keys``) both have, and the schedule if the interval is
the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from server.alerting.pseudo_nodes import PseudoNode
from server.alerting.ruleset import LoadedGroup
from server.promql.values import Labels
from server.rules import group as grouping
from server.rules import state as machine


@dataclass
class RuleStatus:
    health: str = "unknown"  # unknown | ok | err (Prometheus' words)
    last_error: str = ""
    last_evaluation_s: float | None = None
    evaluation_seconds: float = 0.0


@dataclass
class GroupRun:
    loaded: LoadedGroup
    keys: list[str]
    interval_ms: int
    phase_ms: int
    node: PseudoNode
    exempt: list[bool]  # never held (reads dcmon_node_up)
    state: grouping.GroupState = field(default_factory=grouping.GroupState)
    rules: list[RuleStatus] = field(default_factory=list)
    held: dict[int, set[Labels]] = field(default_factory=dict)
    next_ms: int | None = None
    last_evaluation_s: float | None = None
    evaluation_seconds: float = 0.0
    missed: int = 0
    evaluations: int = 0


def phase(key: str, interval_ms: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % interval_ms


def slot_at_or_before(now_ms: int, interval_ms: int, phase_ms: int) -> int:
    return (now_ms - phase_ms) // interval_ms * interval_ms + phase_ms


def carry(previous: GroupRun, run: GroupRun) -> None:
    """Moves the state of ``previous``'s rules that ``run`` still has (same key) into it."""
    index_of = {key: i for i, key in enumerate(previous.keys)}
    alerts: dict[int, dict[Labels, machine.Alert]] = {}
    written: dict[int, set[Labels]] = {}
    for index, key in enumerate(run.keys):
        old = index_of.get(key)
        if old is None:
            continue
        if old in previous.state.alerts:
            alerts[index] = previous.state.alerts[old]
        if old in previous.state.written:
            written[index] = previous.state.written[old]
        run.rules[index] = previous.rules[old]
    run.state = grouping.GroupState(alerts, written)
    if run.interval_ms == previous.interval_ms:
        run.next_ms = previous.next_ms
    run.missed = previous.missed
    run.evaluations = previous.evaluations
    run.last_evaluation_s = previous.last_evaluation_s
    run.evaluation_seconds = previous.evaluation_seconds
