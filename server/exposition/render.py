"""Prometheus text exposition (format 0.0.4) of every live node's latest samples.

Stage: latest -> exposition. Names, types and help come from the catalog; each sample gets the
node's ``instance`` label and the node's configured labels (a sample's own label of the same
name wins). A node's lines are rendered once per batch from per-series templates
(``node_text.py``) and reused by every scrape until its next batch, so a scrape of a large fleet
is mostly joining bytes.

With ``timestamps``, every node sample line ends in its batch's time (milliseconds, the time
the sample is stored at), as Prometheus' federation endpoint does: a Prometheus scraping with
``honor_timestamps`` then holds each sample at dcmon's own time, so its answers equal dcmon's
query API (when it scrapes at least as often as the agents push). Server-derived series carry
no timestamp.

Server-derived series: ``dcmon_node_up`` and ``dcmon_node_last_push_timestamp_seconds`` for
every node not yet forgotten, and ``dcmon_node_clock_skew_seconds`` for those whose agent sent
its clock; silent nodes are ``up == 0`` and their other series are gone.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping

from agent.wire.catalog import Catalog
from server.exposition.node_text import NodeText, escape_label_value, render_labels
from server.latest.cache import NodeLatest, StalePolicy

__all__ = [
    "UNKNOWN_HELP",
    "Renderer",
    "escape_help",
    "escape_label_value",
    "format_value",
    "render_labels",
]

UNKNOWN_HELP = "Not in this server's catalog (a node's text-file metric, or sent by a newer agent)."


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


class Renderer:
    """Renders the fleet's latest samples; keeps each node's lines until its next batch."""

    def __init__(self, catalog: Catalog, policy: StalePolicy) -> None:
        self._catalog = catalog
        self._policy = policy
        self._nodes: dict[str, NodeText] = {}
        self._headers: dict[str, bytes] = {}
        self._lock = threading.Lock()  # scrapes run on worker threads; one renders at a time

    def render(
        self,
        nodes: Iterable[NodeLatest],
        now: float,
        timestamps: bool = False,
        own: Mapping[str, str] | None = None,
    ) -> list[bytes]:
        """Returns: the page's pieces in order (``page.py`` sends them without joining them).

        ``own``: family name -> the server's own lines of a family the nodes send too
        (``process_*``), rendered under the same header, after the nodes' lines."""
        with self._lock:
            return self._render(nodes, now, timestamps, own or {})

    def _render(
        self, nodes: Iterable[NodeLatest], now: float, timestamps: bool, own: Mapping[str, str]
    ) -> list[bytes]:
        known = _newest_per_name(n for n in nodes if not self._policy.is_forgotten(n, now))
        live = [node for node in known if self._policy.is_up(node, now)]
        per_family: dict[str, list[bytes]] = {}
        for node in live:
            text = self._nodes.get(node.node_id)
            if text is None:
                text = self._nodes[node.node_id] = NodeText()
            for name, lines in text.lines(node, timestamps).items():
                per_family.setdefault(name, []).append(lines)
        for name, own_lines in own.items():
            per_family.setdefault(name, []).append(own_lines.encode())
        out: list[bytes] = [self._node_status(known, now)]
        for name in sorted(per_family):
            out.append(self._header(name))
            out.extend(per_family[name])
        # Drop the templates of nodes that left, so memory follows the fleet.
        current = {node.node_id for node in live}
        for node_id in [node_id for node_id in self._nodes if node_id not in current]:
            del self._nodes[node_id]
        return out

    def _header(self, name: str) -> bytes:
        header = self._headers.get(name)
        if header is None:
            spec = self._catalog.get(name)
            if spec is None:
                text = f"# HELP {name} {UNKNOWN_HELP}\n# TYPE {name} untyped\n"
            else:
                text = f"# HELP {name} {escape_help(spec.help)}\n# TYPE {name} {spec.type}\n"
            header = self._headers[name] = text.encode()
        return header

    def _node_status(self, known: list[NodeLatest], now: float) -> bytes:
        up: list[str] = []
        last: list[str] = []
        skew: list[str] = []
        for node in known:
            labels = render_labels([("instance", node.name), *sorted(node.labels.items())])
            state = "1" if self._policy.is_up(node, now) else "0"
            up.append(f"dcmon_node_up{labels} {state}\n")
            last.append(f"dcmon_node_last_push_timestamp_seconds{labels} {node.last_push!r}\n")
            if node.clock_skew_seconds is not None:
                value = format_value(node.clock_skew_seconds)
                skew.append(f"dcmon_node_clock_skew_seconds{labels} {value}\n")
        text = self._header("dcmon_node_up") + "".join(up).encode()
        text += self._header("dcmon_node_last_push_timestamp_seconds") + "".join(last).encode()
        if skew:
            text += self._header("dcmon_node_clock_skew_seconds") + "".join(skew).encode()
        return text


def _newest_per_name(nodes: Iterable[NodeLatest]) -> list[NodeLatest]:
    """Two node ids with one name (a reinstalled node) must not expose duplicate series."""
    newest: dict[str, NodeLatest] = {}
    for node in nodes:
        current = newest.get(node.name)
        if current is None or node.last_push > current.last_push:
            newest[node.name] = node
    return sorted(newest.values(), key=lambda node: node.name)
