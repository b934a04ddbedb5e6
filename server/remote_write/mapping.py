"""Remote-written series onto dcmon's nodes: pure functions, no storage.

Stage: remote_write (decode -> mapping -> service). A series belongs to the node named by its
``instance`` label (``instance`` is a node's label in dcmon, shown on every series of it); a
series without one goes to the node ``remote_write``. The node id is derived from the name, so
every sender writing the same ``instance`` writes the same node. Every other label is kept as
the series' own. As in Prometheus' receiver, empty-valued labels are dropped, and a series
without ``__name__``, with an invalid or repeated label name, or past the wire schema's limits
on names, values and label count is skipped. Every value is kept bit for bit: NaN, +-Inf and
Prometheus' stale markers are stored as sent, so PromQL sees a series end where Prometheus does
(rollups leave stale markers out, ``server/rollup/buckets.py``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from agent.wire.schema import (
    LABEL_NAME_RE,
    MAX_LABEL_VALUE_LENGTH,
    MAX_LABELS_PER_SAMPLE,
    MAX_NAME_LENGTH,
    METRIC_NAME_RE,
)
from server.remote_write.proto import TimeSeries

DEFAULT_NODE = "remote_write"
"""The node of series that carry no ``instance`` label."""
MAX_NODE_NAME = 253


@dataclass(frozen=True)
class Mapped:
    """One series as dcmon stores it: its node, metric, own labels and samples."""

    node: str
    metric: str
    labels: dict[str, str]
    samples: list[tuple[int, float]]


def node_id_of(name: str) -> str:
    """Returns: the 32-hex node id of the remote-write node ``name``."""
    return hashlib.sha256(f"remote_write\0{name}".encode()).hexdigest()[:32]


def map_series(series: TimeSeries) -> Mapped | None:
    """Returns: the series mapped onto its node, or None when it is skipped."""
    labels: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in series.labels:
        if name in seen or not _valid_label(name, value):
            return None
        seen.add(name)
        if value:
            labels[name] = value
    metric = labels.pop("__name__", "")
    if not METRIC_NAME_RE.match(metric) or len(metric) > MAX_NAME_LENGTH:
        return None
    node = labels.pop("instance", DEFAULT_NODE)
    if len(node) > MAX_NODE_NAME or len(labels) > MAX_LABELS_PER_SAMPLE:
        return None
    return Mapped(node, metric, labels, list(series.samples))


def _valid_label(name: str, value: str) -> bool:
    return (
        bool(LABEL_NAME_RE.match(name))
        and len(name) <= MAX_NAME_LENGTH
        and len(value) <= MAX_LABEL_VALUE_LENGTH
    )
