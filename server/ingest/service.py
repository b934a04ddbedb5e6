"""Ingest: turn a request body into stored samples and an acknowledgement.

Stage: transport -> ingest -> storage, events, jobs and latest. Order matters: decode and
validate the whole batch first (wire schema, future timestamps, repeated series, repeated
job-GPU pairings), then store it, then update the latest-value cache. A batch refused at any
step leaves nothing behind. Every refusal is an ``ApiError`` with a 4xx status, a code and the
reason.

The batch's GPU events and job usage are written after its samples, in their own transactions.
Both writes are idempotent (events by content, job counters by their cumulative values), so
they run for duplicates too: a batch whose samples were committed but whose events or jobs
were not (a crash in between) is completed when the agent re-sends it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.wire.codec import WireError, decode_batch
from agent.wire.schema import Ack, Batch
from server.errors import ApiError, ProblemDetail
from server.events.store import write_events
from server.exposition.self_metrics import ServerMetrics
from server.jobs.fold import write_usages
from server.latest.cache import LatestCache, NodeLatest, StalePolicy
from server.storage.series_index import RepeatedSeriesError
from server.storage.store import Family, Store

_log = logging.getLogger(__name__)

_STATUS_OF_WIRE_ERROR = {
    "unsupported_encoding": 415,
    "body_too_large": 413,
    "bad_compression": 400,
    "malformed_json": 400,
    "unsupported_schema_version": 422,
    "invalid_batch": 422,
}


@dataclass(frozen=True)
class IngestLimits:
    max_decompressed_bytes: int
    max_future_seconds: float


class IngestService:
    """Validates, stores and caches batches."""

    def __init__(
        self,
        store: Store,
        latest: LatestCache,
        metrics: ServerMetrics,
        limits: IngestLimits,
        policy: StalePolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._policy = policy
        self._store = store
        self._latest = latest
        self._metrics = metrics
        self._limits = limits
        self._clock = clock

    def ingest(self, body: bytes, content_encoding: str | None) -> Ack:
        """Store one batch.

        Raises:
            ApiError: the batch is refused (nothing of it is stored).
        """
        try:
            batch = decode_batch(body, content_encoding, self._limits.max_decompressed_bytes)
        except WireError as exc:
            raise ApiError(
                _STATUS_OF_WIRE_ERROR.get(exc.code, 400),
                exc.code,
                exc.message,
                [ProblemDetail(p.location, p.message) for p in exc.problems],
            ) from None
        now = self._clock()
        self._check_time(batch, now)
        self._check_name(batch, now)
        self._check_events(batch, now)
        families = _families(batch)
        _check_unique_families(families)
        _check_unique_pairings(batch)
        try:
            result = self._store.write_batch(
                batch,
                families,
                received_at=now,
                writers=[
                    lambda conn, node_pk: write_events(conn, node_pk, batch.events),
                    lambda conn, node_pk: write_usages(conn, node_pk, batch.timestamp, batch.jobs),
                ],
            )
        except RepeatedSeriesError as exc:
            raise ApiError(422, "invalid_batch", str(exc)) from None
        if result.duplicate and self._latest.touch(batch.node.node_id, now):
            return Ack(status="duplicate", seq=batch.seq, samples=0)
        self._latest.update(
            NodeLatest(
                node_id=batch.node.node_id,
                name=batch.node.name,
                labels=dict(batch.node.labels),
                interval_seconds=batch.interval_seconds,
                last_push=now,
                batch_ts=batch.timestamp,
                seq=batch.seq,
                families=dict(families),
            )
        )
        if result.duplicate:
            return Ack(status="duplicate", seq=batch.seq, samples=0)
        self._metrics.ingest_samples.inc(result.samples)
        return Ack(status="accepted", seq=batch.seq, samples=result.samples)

    def _check_time(self, batch: Batch, now: float) -> None:
        ahead = batch.timestamp - now
        if ahead > self._limits.max_future_seconds:
            raise ApiError(
                422,
                "timestamp_in_future",
                f"batch timestamp is {ahead:.0f}s ahead of the server's clock (limit "
                f"{self._limits.max_future_seconds:.0f}s); check the node's time sync",
            )

    def _check_events(self, batch: Batch, now: float) -> None:
        for position, event in enumerate(batch.events):
            ahead = event.time - now
            if ahead > self._limits.max_future_seconds:
                raise ApiError(
                    422,
                    "timestamp_in_future",
                    f"events.{position}.time is {ahead:.0f}s ahead of the server's clock",
                    [ProblemDetail(f"events.{position}.time", "in the future")],
                )

    def _check_name(self, batch: Batch, now: float) -> None:
        """Two live nodes must not share a name: their series would collide on /metrics."""
        for node in self._latest.named(batch.node.name):
            if node.node_id != batch.node.node_id and self._policy.is_up(node, now):
                raise ApiError(
                    409,
                    "name_conflict",
                    f"node name {batch.node.name!r} is in use by another live node "
                    f"(node id {node.node_id}); give this node its own node_name",
                )


def _families(batch: Batch) -> list[Family]:
    """Returns: the batch's families plus the per-collector status series derived from it."""
    families: list[Family] = [(family.name, family.samples) for family in batch.metrics]
    if batch.collectors:
        families.append(
            (
                "dcmon_agent_collector_success",
                [({"collector": c.name}, 1.0 if c.success else 0.0) for c in batch.collectors],
            )
        )
        families.append(
            (
                "dcmon_agent_collector_duration_seconds",
                [({"collector": c.name}, c.duration_seconds) for c in batch.collectors],
            )
        )
    return families


def _check_unique_families(families: list[Family]) -> None:
    seen_names: set[str] = set()
    for name, _samples in families:
        if name in seen_names:
            raise ApiError(
                422, "invalid_batch", f"metric family {name!r} appears twice in the batch"
            )
        seen_names.add(name)
    # Repeated label sets within a family are refused by the store (RepeatedSeriesError), where
    # the series lookup sees them at no extra cost.


def _check_unique_pairings(batch: Batch) -> None:
    """One report per (job, scheduler, GPU) and batch: two would be counted as one run twice."""
    seen: set[tuple[str, str, str]] = set()
    for position, usage in enumerate(batch.jobs):
        key = (usage.job_id, usage.scheduler, usage.uuid)
        if key in seen:
            raise ApiError(
                422,
                "invalid_batch",
                f"jobs.{position}: job {usage.job_id!r} ({usage.scheduler}) on GPU "
                f"{usage.uuid!r} is reported twice in the batch",
                [ProblemDetail(f"jobs.{position}", "repeats a job-GPU pairing")],
            )
        seen.add(key)
