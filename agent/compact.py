"""Compact forms of spooled batches: the values alone, under a layout key the server gave.

Stage: batch -> spool -> (compact form) -> transport. The spool keeps every batch in full
(form 1, ``agent.wire.schema.Batch``): it stands on its own. Beside it, this keeps the compact
form (form 2, ``CompactBatch``) of recent batches whose series are exactly those of a batch the
server acknowledged with a layout key (``Ack.layout``): families in the same order, each with
the same label sets in the same order.

The ticking thread ``offer``s each tick once it is spooled; the shipper ``take``s the compact
form of the batch it is about to send, ``learn``s the layout key an acknowledgement carries, and
``forget``s everything when a compact send fails (the batch then goes in full at once, and so do
the next ones until an acknowledgement gives a key again). Only the last ``KEPT_BATCHES`` seqs
are remembered: a batch older than that goes in full.
"""

from __future__ import annotations

import threading
from typing import Any

from agent.batch import TickBatch
from agent.wire.codec import encode_document
from agent.wire.schema import COMPACT_SCHEMA_VERSION, LAYOUT_KEY_RE, MAX_SAMPLES_PER_BATCH

KEPT_BATCHES = 64
"""Seqs whose series (and compact form) are remembered."""

Structure = list[tuple[str, list[dict[str, str]]]]
"""A batch's series: each family's name with its samples' label sets, in order."""


class CompactForms:
    """The layout key the server gave last, and the compact forms of batches that fit it.

    Thread-safe: ``offer`` runs on the ticking thread, the rest on the shipper's.
    """

    def __init__(self, kept_batches: int = KEPT_BATCHES) -> None:
        self._kept = max(1, kept_batches)
        self._lock = threading.Lock()
        self._structures: dict[int, Structure] = {}  # seq -> series, oldest first
        self._last: Structure | None = None  # the latest tick's series (the ticking thread's)
        self._key: str | None = None
        self._bound: Structure | None = None  # the series the key stands for
        self._payloads: dict[int, bytes] = {}  # seq -> compact form, oldest first
        self._early: tuple[int, str] | None = None  # a key learnt before its tick was offered
        self._epoch = 0  # counts forget() and key changes: a form built meanwhile is stale

    def offer(self, tick: TickBatch) -> None:
        """Remember ``tick``'s series against its seq and, when they are those of the current
        layout key, build and keep its compact form."""
        document = tick.document
        metrics: list[dict[str, Any]] = document["metrics"]
        structure: Structure = [
            (family["name"], [sample[0] for sample in family["samples"]]) for family in metrics
        ]
        last, bound = self._last, self._bound
        if last is not None and structure == last:
            structure = last  # equal series share one copy: 64 seqs cost one
        elif bound is not None and structure == bound:
            structure = self._last = bound  # back to the key's series
        else:
            # A copy of the label sets: a collector may reuse and change its dicts later.
            structure = [(name, [dict(labels) for labels in sets]) for name, sets in structure]
            self._last = structure
        seq = tick.seq
        with self._lock:
            self._remember(self._structures, seq, structure)
            if self._early is not None and self._early[0] == seq:
                self._bind(structure, self._early[1])
                return  # that batch is delivered already
            key, bound, epoch = self._key, self._bound, self._epoch
        if key is None or bound is None or (structure is not bound and structure != bound):
            return
        values = [sample[1] for family in metrics for sample in family["samples"]]
        if len(values) > MAX_SAMPLES_PER_BATCH:
            return
        compact = {name: value for name, value in document.items() if name != "metrics"}
        compact["schema_version"] = COMPACT_SCHEMA_VERSION
        compact["layout"] = key
        compact["values"] = values
        payload = encode_document(compact)
        with self._lock:
            if self._epoch == epoch:
                self._remember(self._payloads, seq, payload)

    def learn(self, seq: int, layout: str) -> None:
        """The server acknowledged batch ``seq`` with layout key ``layout``: later batches with
        the same series go compact. A seq no longer (or not yet) remembered binds nothing,
        unless its tick is offered next; a key that is not one is ignored."""
        if not LAYOUT_KEY_RE.match(layout):
            return
        with self._lock:
            structure = self._structures.get(seq)
            if structure is None:
                newest = next(reversed(self._structures), None)
                if newest is None or seq > newest:
                    self._early = (seq, layout)  # acknowledged before its offer came in
                return
            self._bind(structure, layout)

    def take(self, seq: int) -> bytes | None:
        """Returns: the compact form of batch ``seq`` (given once), or None: send it in full."""
        with self._lock:
            return self._payloads.pop(seq, None)

    def give_back(self, seq: int, payload: bytes) -> None:
        """Keep a taken compact form for the next attempt (its send failed for a reason that
        is not about the form), unless a key change or ``forget`` came meanwhile."""
        with self._lock:
            if self._key is not None and seq not in self._payloads:
                self._payloads[seq] = payload

    def forget(self) -> None:
        """A compact send failed: drop the key and every compact form."""
        with self._lock:
            self._key = self._bound = self._early = None
            self._payloads.clear()
            self._epoch += 1

    def _bind(self, structure: Structure, layout: str) -> None:
        """Make ``layout`` the key of ``structure`` (the lock is held)."""
        self._early = None
        if layout != self._key:
            self._payloads.clear()  # forms under another key: the server may not hold it
            self._epoch += 1
        self._key, self._bound = layout, structure

    def _remember(self, kept: dict[int, Any], seq: int, value: object) -> None:
        kept[seq] = value
        while len(kept) > self._kept:
            del kept[next(iter(kept))]
