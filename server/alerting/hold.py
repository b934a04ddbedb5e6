"""Nodes whose alerts are held: down, or catching up on a backlog. Pure.

Stage: alerting (inside a round). dcmon evaluates rules at ``now - query_offset`` and never
replays missed rounds, so data an agent replays from its spool is seen at its own time and
never fires a historic alert as if it were new. While a node is **catching up** (it pushes, but
its newest batch is more than one of its intervals older than the evaluation time: it is
still sending its backlog, oldest first) or **down** (no push within the stale window, the
``dcmon_node_up == 0`` rule of ``/metrics``), the alerts that carry its ``instance`` label are
held: no new alert starts, none resolves and no ``for`` timer restarts; they continue from
where they were once the node is current again. A node that has just come **back** is held
too while the evaluation time (``now - query_offset``) is still before its return: its data
there is the gap, which would otherwise resolve its alerts in the first round after it
reconnects (Netdata's "postpone alerts on connect"). A down node's alerts therefore stay as they
were (the node-down alert explains them) instead of resolving silently because its data
stopped. Rules whose expression reads a series the server itself keeps about each node's
connection (``NEVER_HELD``: ``dcmon_node_up`` for the node-down rules, and
``dcmon_node_clock_skew_seconds``) are never held: they are about the very thing that makes a
node look down or behind.

The newest batch is on the server's clock: the caller corrects the node's batch timestamp by
its measured clock skew, so a node whose clock runs behind is not taken for one catching up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from server.promql import plan
from server.promql.errors import PromQLError
from server.promql.parse import parse
from server.promql.values import Labels, get_label
from server.rules.state import Alert

NODE_UP = "dcmon_node_up"
CLOCK_SKEW = "dcmon_node_clock_skew_seconds"
NEVER_HELD = (NODE_UP, CLOCK_SKEW)


@dataclass(frozen=True)
class NodeStatus:
    """What the hold and ``dcmon_node_up`` need of a node (times in ms on the server's clock:
    ``newest_batch_ms`` is the node's batch timestamp corrected by its clock skew)."""

    name: str
    labels: Mapping[str, str]
    up: bool
    newest_batch_ms: int
    interval_ms: int
    up_since_ms: int = 0  # when it was last seen coming up (0: not known to have been down)


def held_instances(nodes: Iterable[NodeStatus], at_ms: int) -> set[str]:
    """Returns: the names of the nodes whose alerts are held at evaluation time ``at_ms``."""
    return {
        node.name
        for node in nodes
        if not node.up
        or node.newest_batch_ms < at_ms - node.interval_ms
        or at_ms < node.up_since_ms
    }


def never_held(expr: str) -> bool:
    """Returns: whether ``expr`` selects a ``NEVER_HELD`` series (such a rule is never held)."""
    try:
        tree = parse(expr)
    except PromQLError:
        return False
    return any(
        isinstance(node, plan.VectorSelector)
        and any(
            m.name == "__name__" and any(m.matches(name) for name in NEVER_HELD)
            for m in node.matchers
        )
        for node in plan.walk(tree)
    )


def apply(
    before: Mapping[Labels, Alert], after: Mapping[Labels, Alert], held: set[str]
) -> tuple[dict[Labels, Alert], set[Labels]]:
    """Returns: ``after`` with every alert of a held instance as it was in ``before`` (a new
    one dropped, a vanished one restored), and the labels of the alerts so held."""
    if not held:
        return dict(after), set()
    result: dict[Labels, Alert] = {}
    kept: set[Labels] = set()
    for labels, alert in after.items():
        if get_label(labels, "instance") not in held:
            result[labels] = alert
        elif labels in before:
            result[labels] = before[labels]
            kept.add(labels)
    for labels, alert in before.items():
        if labels not in after and get_label(labels, "instance") in held:
            result[labels] = alert
            kept.add(labels)
    return result, kept
