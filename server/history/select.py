"""Series selection: one metric's series whose visible labels satisfy every matcher.

Stage: storage -> history/latest/discovery. A series' visible labels are its own, ``instance``
(its node's name) and its node's configured labels, as on /metrics (a series' own label wins
over a node label of the same name; ``instance`` is reserved, so no series has its own).
Matchers on ``instance`` are checked per node first, so a query naming nodes parses only
their series' labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from server.rollup.matchers import Matcher, matches_all
from server.storage.series_index import IndexedSeries, SeriesIndex
from server.storage.store import NodeNaming


@dataclass(frozen=True)
class Selected:
    series: IndexedSeries
    labels: dict[str, str]


def visible_labels(
    instance: str, node_labels: Mapping[str, str], labels: Mapping[str, str]
) -> dict[str, str]:
    visible = {"instance": instance}
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
        if not matches_all(on_instance, {"instance": node.name}):
            continue
        for item in series:
            labels = visible_labels(node.name, node.labels, item.labels())
            if matches_all(matchers, labels):
                selected.append(Selected(item, labels))
    return selected
