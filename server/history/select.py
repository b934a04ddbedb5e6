"""Series selection: one metric's series whose visible labels satisfy every matcher.

Stage: storage -> history/latest/discovery. A series' visible labels are its own, ``instance``
(its node's name) and its node's configured labels, as on /metrics (a series' own label wins
over a node label of the same name; ``instance`` is reserved, so no series has its own). The
remote-write node of series sent without ``instance`` shows none (``node_instance``).
Matchers on ``instance`` are checked per node first, so a query naming nodes parses only
their series' labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from server.alerting.pseudo_nodes import is_server_side
from server.remote_write.mapping import DEFAULT_NODE, node_id_of
from server.rollup.matchers import Matcher, matches_all
from server.storage.series_index import IndexedSeries, SeriesIndex
from server.storage.store import NodeNaming


@dataclass(frozen=True)
class Selected:
    series: IndexedSeries
    labels: dict[str, str]


_NO_INSTANCE_ID = node_id_of(DEFAULT_NODE)


def node_instance(node: NodeNaming) -> str:
    """Returns: the ``instance`` label of the node's series: its name, or "" (no label) for
    the node that holds remote-written series sent without one and for a server-side node,
    whose series (rule output, ``server/alerting/pseudo_nodes.py``) carry only their own."""
    if node.node_id == _NO_INSTANCE_ID or is_server_side(node.node_id, node.name):
        return ""
    return node.name


def instance_filters(node: NodeNaming) -> bool:
    """Returns: whether matchers on ``instance`` can be checked against the node's
    ``node_instance`` (not on a server-side node: each of its series has its own)."""
    return not is_server_side(node.node_id, node.name)


def visible_labels(
    instance: str, node_labels: Mapping[str, str], labels: Mapping[str, str]
) -> dict[str, str]:
    """Returns: a series' visible labels (``instance`` "" is left out, as Prometheus drops
    empty labels)."""
    visible = {"instance": instance} if instance else {}
    visible.update({k: v for k, v in node_labels.items() if k not in labels})
    visible.update(labels)
    return visible


def select_series(
    index: SeriesIndex,
    nodes: Mapping[int, NodeNaming],
    metric: str,
    matchers: Sequence[Matcher],
) -> list[Selected]:
    """Returns: the matching series of ``metric`` with their visible labels."""
    on_instance = [m for m in matchers if m.name == "instance"]
    selected = []
    for node_pk, series in index.metric(metric).items():
        node = nodes.get(node_pk)
        if node is None:
            continue
        instance = node_instance(node)
        if instance_filters(node) and not matches_all(on_instance, {"instance": instance}):
            continue
        for item in series:
            labels = visible_labels(instance, node.labels, item.labels())
            if matches_all(matchers, labels):
                selected.append(Selected(item, labels))
    return selected
