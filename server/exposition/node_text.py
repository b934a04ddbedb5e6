"""One node's sample lines as exposition bytes, rendered from per-series templates.

Stage: latest -> exposition (inside ``render.py``). Input: a node's newest batch; output: its
lines per family, as bytes ready to be joined into ``/metrics``.

A series' text before its value (name, ``instance``, node and sample labels, escaped) does not
change from batch to batch; only the values do. So each family keeps a bytes template, the
series' fixed text with a ``%a`` where each value goes, and a batch is rendered with one
``template % values`` per family, with no per-sample formatting code: ``%a`` prints an integral
value (made an int first) without ``.0`` and any other float as its shortest ``repr``, as
``format_value`` does. The template is built again only when the family's label sets differ
from the previous batch's, or the node's name or labels change.

The label sets are compared by a key: the process-keyed 64-bit hash of their msgpack encoding
(labels in order, so the output always equals rendering each sample on its own). Keeping the
batch's label dicts to compare with instead would hold every series' previous dicts alive
until the next scrape, about as much memory again as the latest cache's; and comparing fresh
dicts with old ones costs more than encoding the fresh ones. Two different label sets of one
family share a key with probability 2**-64.

The rare non-finite value is then respelt as Prometheus spells it (``NaN``, ``+Inf``, ``-Inf``)
and, with timestamps, each line gets the batch's time, by whole-text replaces. Each matches only
at a line's end: a line break inside a label value is escaped (``\\n``), so the only raw
``\\n`` ends a line, and what precedes it is the value.

Cost at a live fleet (every node with a new batch since the last scrape): comparing the label
sets and printing the values, a few hundred nanoseconds per series; a scrape that finds no new
batch only collects the kept pieces.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

import msgspec

from server.latest.cache import FamilySamples, NodeLatest
from server.latest.compact import CompactFamilies

Labels = Mapping[str, str]
_NON_FINITE = ((b" nan\n", b" NaN\n"), (b" inf\n", b" +Inf\n"), (b" -inf\n", b" -Inf\n"))
_EXACT = 2.0**53
_first = itemgetter(0)
_ENCODER = msgspec.msgpack.Encoder()


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_labels(pairs: Sequence[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs)
    return "{" + inner + "}" if inner else ""


@dataclass(frozen=True)
class _Family:
    key: int
    """``_key`` of the label sets the template was built from."""
    template: bytes
    labels: object = None
    """A compact batch's layout list of label sets the template was built from (compared by
    identity: the layout's lists do not change while the layout stays)."""


@dataclass
class NodeText:
    """A node's templates and its rendered lines (per form: with or without timestamps)."""

    identity: tuple[str, tuple[tuple[str, str], ...]] = ("", ())
    families: dict[str, _Family] = field(default_factory=dict)
    rendered: dict[bool, tuple[tuple[int, float], dict[str, bytes]]] = field(default_factory=dict)

    def lines(self, node: NodeLatest, timestamps: bool) -> dict[str, bytes]:
        """Returns: family name -> the node's lines of it, for the node's newest batch."""
        identity = (node.name, tuple(sorted(node.labels.items())))
        if identity != self.identity:
            self.identity, self.families, self.rendered = identity, {}, {}
        batch = (node.seq, node.batch_ts)
        done = self.rendered.get(timestamps)
        if done is not None and done[0] == batch:
            return done[1]
        suffix = b" %d\n" % round(node.batch_ts * 1000) if timestamps else None
        families = node.families
        if isinstance(families, CompactFamilies):
            texts = {name: self._render_compact(families, name, suffix) for name in families}
        else:
            texts = {
                name: self._render(name, samples, suffix) for name, samples in families.items()
            }
        # A family the node stopped sending leaves with its template.
        for name in [name for name in self.families if name not in node.families]:
            del self.families[name]
        self.rendered[timestamps] = (batch, texts)
        return texts

    def _render_compact(self, families: CompactFamilies, name: str, suffix: bytes | None) -> bytes:
        """A compact batch's family: while its layout stays, the template is found by the
        identity of the layout's label list, with no per-sample key at all."""
        parts = families.parts(name)
        if parts is None:
            return self._render(name, families[name], suffix)
        labels, values = parts
        family = self.families.get(name)
        if family is None or family.labels is not labels:
            as_tuple = tuple(labels)
            key = hash(_ENCODER.encode(as_tuple))
            template = _template(name, self.identity, as_tuple)
            family = self.families[name] = _Family(key, template, labels)
        return self._fill(family, _printable_values(values), suffix)

    def _render(self, name: str, samples: FamilySamples, suffix: bytes | None) -> bytes:
        if not samples:
            self.families.pop(name, None)
            return b""
        labels = tuple(map(_first, samples))
        key = hash(_ENCODER.encode(labels))
        family = self.families.get(name)
        if family is None or family.key != key:
            family = self.families[name] = _Family(key, _template(name, self.identity, labels))
        return self._fill(family, _printable(samples), suffix)

    @staticmethod
    def _fill(family: _Family, values: tuple[float, ...], suffix: bytes | None) -> bytes:
        text = family.template % values
        if not math.isfinite(sum(values)):  # nan or inf among them (or a sum past the range)
            for python_spelling, prometheus in _NON_FINITE:
                text = text.replace(python_spelling, prometheus)
        if suffix is not None:
            text = text.replace(b"\n", suffix)
        return text


def _printable(samples: FamilySamples) -> tuple[float, ...]:
    """Returns: the values as ``%a`` should print them: an integral one as an int (no ``.0``),
    up to 2**53 (past it, its ``repr``), as ``format_value`` does."""
    return _printable_values([v for _, v in samples])


def _printable_values(values: Sequence[float]) -> tuple[float, ...]:
    try:
        return tuple([int(v) if v.is_integer() and -_EXACT < v < _EXACT else v for v in values])
    except AttributeError:  # an int among them (Python < 3.12 ints have no is_integer)
        return _printable_values([float(v) for v in values])


def _template(
    name: str, identity: tuple[str, tuple[tuple[str, str], ...]], labels: tuple[Labels, ...]
) -> bytes:
    """Returns: one line per label set, ``%a`` where its value goes (``%`` escaped)."""
    instance, node_pairs = identity
    lines = []
    for own in labels:
        pairs = [("instance", instance)]
        pairs.extend((key, value) for key, value in node_pairs if key not in own)
        pairs.extend(own.items())
        lines.append(f"{name}{render_labels(pairs)} ".replace("%", "%%") + "%a\n")
    return "".join(lines).encode()
