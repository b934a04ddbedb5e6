"""Prometheus text exposition (format 0.0.4) of every live node's latest samples.

Stage: latest -> exposition. Names, types and help come from the catalog; each sample gets the
node's ``instance`` label and the node's configured labels (a sample's own label of the same
name wins). A node's lines are rendered once per batch and reused by every scrape until its
next batch, so a scrape of a large fleet is mostly joining strings.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.wire.catalog import Catalog
from server.latest.cache import FamilySamples, NodeLatest, StalePolicy

UNKNOWN_HELP = "Not in this server's catalog (a node's text-file metric, or sent by a newer agent)."


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


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


def render_labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs)
    return "{" + inner + "}" if inner else ""


@dataclass(frozen=True)
class _Rendered:
    key: tuple[int, float, str, tuple[tuple[str, str], ...]]
    families: dict[str, str]


class Renderer:
    """Renders the fleet's latest samples; keeps each node's lines until its next batch."""

    def __init__(self, catalog: Catalog, policy: StalePolicy) -> None:
        self._catalog = catalog
        self._policy = policy
        self._rendered: dict[tuple[str, bool], _Rendered] = {}

    def render(
        self,
        nodes: Iterable[NodeLatest],
        now: float,
        timestamps: bool = False,
        own: Mapping[str, str] | None = None,
    ) -> str:
        """``own``: family name -> the server's own lines of a family the nodes send too
        (``process_*``), rendered under the same header, after the nodes' lines."""
        known = _newest_per_name(n for n in nodes if not self._policy.is_forgotten(n, now))
        live = [node for node in known if self._policy.is_up(node, now)]
        per_family: dict[str, list[str]] = {}
        for node in live:
            for name, lines in self._lines_of(node, timestamps).items():
                per_family.setdefault(name, []).append(lines)
        for name, lines in (own or {}).items():
            per_family.setdefault(name, []).append(lines)
        out: list[str] = [self._node_status(known, now)]
        for name in sorted(per_family):
            out.append(self._header(name))
            out.extend(per_family[name])
        # Drop render caches of nodes that left, so memory follows the fleet.
        current = {(node.node_id, timestamps) for node in live}
        for key in [key for key in list(self._rendered) if key[1] == timestamps]:
            if key not in current:
                self._rendered.pop(key, None)
        return "".join(out)

    def _lines_of(self, node: NodeLatest, timestamps: bool) -> dict[str, str]:
        node_labels = tuple(sorted(node.labels.items()))
        key = (node.seq, node.batch_ts, node.name, node_labels)
        cached = self._rendered.get((node.node_id, timestamps))
        if cached is not None and cached.key == key:
            return cached.families
        suffix = f" {round(node.batch_ts * 1000)}\n" if timestamps else "\n"
        families = {
            name: _family_lines(name, node.name, node.labels, samples, suffix)
            for name, samples in node.families.items()
        }
        self._rendered[(node.node_id, timestamps)] = _Rendered(key, families)
        return families

    def _header(self, name: str) -> str:
        spec = self._catalog.get(name)
        if spec is None:
            return f"# HELP {name} {UNKNOWN_HELP}\n# TYPE {name} untyped\n"
        return f"# HELP {name} {escape_help(spec.help)}\n# TYPE {name} {spec.type}\n"

    def _node_status(self, known: list[NodeLatest], now: float) -> str:
        up = [self._header("dcmon_node_up")]
        last = [self._header("dcmon_node_last_push_timestamp_seconds")]
        skew: list[str] = []
        for node in known:
            labels = render_labels([("instance", node.name), *sorted(node.labels.items())])
            state = "1" if self._policy.is_up(node, now) else "0"
            up.append(f"dcmon_node_up{labels} {state}\n")
            last.append(f"dcmon_node_last_push_timestamp_seconds{labels} {node.last_push!r}\n")
            if node.clock_skew_seconds is not None:
                value = format_value(node.clock_skew_seconds)
                skew.append(f"dcmon_node_clock_skew_seconds{labels} {value}\n")
        if skew:
            skew.insert(0, self._header("dcmon_node_clock_skew_seconds"))
        return "".join(up) + "".join(last) + "".join(skew)


def _family_lines(
    name: str,
    instance: str,
    node_labels: Mapping[str, str],
    samples: FamilySamples,
    suffix: str = "\n",
) -> str:
    lines = []
    node_pairs = sorted(node_labels.items())
    for labels, value in samples:
        pairs = [("instance", instance)]
        pairs.extend((k, v) for k, v in node_pairs if k not in labels)
        pairs.extend(labels.items())
        lines.append(f"{name}{render_labels(pairs)} {format_value(value)}{suffix}")
    return "".join(lines)


def _newest_per_name(nodes: Iterable[NodeLatest]) -> list[NodeLatest]:
    """Two node ids with one name (a reinstalled node) must not expose duplicate series."""
    newest: dict[str, NodeLatest] = {}
    for node in nodes:
        current = newest.get(node.name)
        if current is None or node.last_push > current.last_push:
            newest[node.name] = node
    return sorted(newest.values(), key=lambda node: node.name)
