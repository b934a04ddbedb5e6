"""Layouts: a node's series in the order its agent sends them, so a compact batch is only values.

Stage: ingest -> storage. A full batch (``schema.Batch``) from an agent that asks for layout keys
is looked up sample by sample as always; its metric families, resolved to series ids, become
the node's layout, and the acknowledgement carries its key. A later compact batch
(``schema.CompactBatch``) names the key and carries one value per position: the writer finds
the layout (one dict lookup), checks the count, and writes the head row from the layout's ids
and the values as they came, with no per-sample Python.

The key is a 128-bit BLAKE2b of the families' names and label sets in order (msgpack), so one
structure always gets one key, in every process. Each node has one layout, the newest: a full
batch whose families equal it keeps it (the index's per-family fast path says so at no extra
cost); one that differs replaces it. A layout is kept in memory only: after a restart, or on a
replica that never saw the full batch, a compact batch gets 409 ``unknown_layout`` and the agent
sends it in full, which makes the layout here. A layout is dropped with any of its node's
series (``SeriesIndex.forget``), so it never hands out a forgotten id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

Labels = Mapping[str, str]
_ENCODER = msgspec.msgpack.Encoder()


class UnknownLayoutError(LookupError):
    """A compact batch names a layout this server does not hold for its node (or no longer:
    its series changed); the agent must send the batch in full."""


def layout_key(families: Sequence[tuple[str, Sequence[Labels]]]) -> str:
    """Returns: the key of these families (name, label sets), in order."""
    encoded = _ENCODER.encode([[name, list(labels)] for name, labels in families])
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


@dataclass(frozen=True)
class Layout:
    """One node's metric families as its agent sends them, resolved to series ids."""

    key: str
    node_pk: int
    names: tuple[str, ...]
    labels: tuple[Sequence[Labels], ...]
    """Per family, its label sets in the agent's order (the full batch's own lists)."""
    offsets: tuple[int, ...]
    """Where each family's values start; the last entry is the number of values."""
    ids: list[int]
    """Series id of each position, in the agent's order."""

    @classmethod
    def of(
        cls, node_pk: int, families: Sequence[tuple[str, Sequence[Labels]]], ids: Sequence[int]
    ) -> Layout:
        offsets = [0]
        for _name, labels in families:
            offsets.append(offsets[-1] + len(labels))
        if offsets[-1] != len(ids):
            raise ValueError(f"{len(ids)} ids for {offsets[-1]} samples")
        return cls(
            key=layout_key(families),
            node_pk=node_pk,
            names=tuple(name for name, _ in families),
            labels=tuple(labels for _, labels in families),
            offsets=tuple(offsets),
            ids=list(ids),
        )

    @property
    def count(self) -> int:
        return self.offsets[-1]
