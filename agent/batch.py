"""Batching: one tick's collector results -> one batch, as the plain wire document.

Stage: collectors -> batch -> spool. Samples are grouped by metric family in the order the
collectors produced them. The daemon's every tick builds a ``TickBatch``: the document that
``Batch.model_dump(mode="json")`` would give (dicts, lists, strings and numbers), encoded as
it is (``agent.wire.codec.encode_document``) without a pydantic model per family and status.
``TickBatch.to_batch()`` gives the ``Batch`` model of the same document, for callers that want
one (``dcmon agent --once --dry-run``, tests); ``BatchBuilder.build`` is the two in one.

Labels are not re-validated (that costs ~5x the rest of the tick); collectors are held to the
catalog by the contract tests, and the builder still removes the two faults that would make
the server refuse a whole batch: non-finite values and a series emitted twice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agent.collectors.base import Sample
from agent.wire.codec import encode_document
from agent.wire.schema import (
    SCHEMA_VERSION,
    Batch,
    CollectorStatus,
    GpuEvent,
    Inventory,
    JobGpuUsage,
    MetricFamily,
    NodeIdentity,
)

_log = logging.getLogger(__name__)

WireSample = list[Any]
"""One sample in the document: ``[labels, value]`` (a list, as JSON has it)."""


@dataclass(frozen=True)
class CollectorResult:
    """What one collector returned this tick, and how it went."""

    name: str
    samples: Sequence[Sample]
    success: bool
    duration_seconds: float
    error: str | None = None


@dataclass(frozen=True)
class TickBatch:
    """One tick's batch as plain data.

    ``document`` is the wire document (``Batch``'s fields, JSON-ready); the models it was made
    from ride along so that ``to_batch`` rebuilds nothing it already had.
    """

    node: NodeIdentity
    document: dict[str, Any]
    inventory: Inventory | None
    events: list[GpuEvent]
    jobs: list[JobGpuUsage]
    samples: int

    @property
    def seq(self) -> int:
        seq: int = self.document["seq"]
        return seq

    def payload(self) -> bytes:
        """Returns: the batch as the agent POSTs it (gzip-compressed JSON)."""
        return encode_document(self.document)

    def to_batch(self) -> Batch:
        """Returns: the ``Batch`` model of this document (not validated, as it was built)."""
        document = self.document
        return Batch.model_construct(
            schema_version=SCHEMA_VERSION,
            node=self.node,
            seq=document["seq"],
            timestamp=document["timestamp"],
            interval_seconds=document["interval_seconds"],
            collectors=[CollectorStatus.model_construct(**c) for c in document["collectors"]],
            metrics=[
                MetricFamily.model_construct(
                    name=family["name"],
                    samples=[(labels, value) for labels, value in family["samples"]],
                )
                for family in document["metrics"]
            ],
            inventory=self.inventory,
            events=self.events,
            jobs=self.jobs,
        )


class BatchBuilder:
    """Builds batches for one node."""

    def __init__(self, identity: NodeIdentity, interval_seconds: float) -> None:
        self._identity = identity
        self._node = identity.model_dump(mode="json")
        self._interval = interval_seconds
        self._warned: set[str] = set()

    def build(
        self,
        seq: int,
        timestamp: float,
        results: Iterable[CollectorResult],
        inventory: Inventory | None,
        events: Sequence[Any] = (),
        jobs: Sequence[Any] = (),
    ) -> Batch:
        """Returns: the batch for one tick, as a model (see ``tick``)."""
        return self.tick(seq, timestamp, results, inventory, events, jobs).to_batch()

    def tick(
        self,
        seq: int,
        timestamp: float,
        results: Iterable[CollectorResult],
        inventory: Inventory | None,
        events: Sequence[Any] = (),
        jobs: Sequence[Any] = (),
    ) -> TickBatch:
        """Returns: the batch for one tick, as plain data.

        Args:
            events: agent-side event records (dataclasses with ``GpuEvent``'s field names).
            jobs: agent-side job usage records (dataclasses with ``JobGpuUsage``'s fields).
        """
        families: dict[str, list[WireSample]] = {}
        statuses: list[dict[str, Any]] = []
        for result in results:
            statuses.append(
                {
                    "name": result.name,
                    "success": result.success,
                    "duration_seconds": max(result.duration_seconds, 0.0),
                    "error": result.error[:1024] if result.error else None,
                }
            )
            for name, labels, value in result.samples:
                if type(value) is not float:
                    value = float(value)  # noqa: PLW2901 (ints and bools travel as floats)
                if value - value != 0.0:  # NaN or infinite: inf - inf is NaN
                    self._warn_once(f"{name}: non-finite value from collector {result.name}")
                    continue
                family = families.get(name)
                if family is None:
                    family = families[name] = []
                family.append([labels, value])
        metrics = [
            {"name": name, "samples": self._unique(name, samples)}
            for name, samples in families.items()
        ]
        event_models = [GpuEvent.model_construct(**dataclasses.asdict(e)) for e in events]
        job_models = [JobGpuUsage.model_construct(**dataclasses.asdict(u)) for u in jobs]
        document: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "node": self._node,
            "seq": seq,
            "timestamp": timestamp,
            "interval_seconds": self._interval,
            "collectors": statuses,
            "metrics": metrics,
            "inventory": None if inventory is None else inventory.model_dump(mode="json"),
            "events": [event.model_dump(mode="json") for event in event_models],
            "jobs": [job.model_dump(mode="json") for job in job_models],
        }
        samples = sum(len(family["samples"]) for family in metrics)
        return TickBatch(self._identity, document, inventory, event_models, job_models, samples)

    def _unique(self, name: str, samples: list[WireSample]) -> list[WireSample]:
        """Returns: the samples with repeated series removed (first one wins)."""
        if len(samples) == 1:
            return samples
        # Fast path: when every sample has the same label names in the same order, distinct
        # value tuples mean distinct series. Otherwise compare order-free label sets.
        if len({tuple(labels) for labels, _ in samples}) == 1 and len(
            {tuple(labels.values()) for labels, _ in samples}
        ) == len(samples):
            return samples
        unique: dict[frozenset[tuple[str, str]], WireSample] = {}
        for sample in samples:
            unique.setdefault(frozenset(sample[0].items()), sample)
        if len(unique) != len(samples):
            self._warn_once(f"{name}: a series was emitted twice in one tick; kept the first")
        return list(unique.values())

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            _log.warning(message)
