"""Ingest: turn a request body into stored samples and an acknowledgement.

Stage: transport -> ingest -> storage, events, jobs and latest. Order matters: decode and
validate the whole batch first (wire schema, the caller's right to write the node, future
timestamps, the node's name, input limits, repeated families and job-GPU pairings), then store
it, then update the latest-value cache. A batch refused at any step leaves nothing behind.
Every refusal is an ``ApiError`` with a status, a code and the reason: 4xx for a batch refused
for good, 503 ``storage_unavailable`` (with ``Retry-After``) when the database cannot take it
now, including a write that does not commit within ``write_timeout_seconds``.

Input limits, each a 4xx refusal counted by its code:

- body size (413 ``body_too_large``, in the router) and inflated size (413, while inflating);
- the wire schema's limits on names, labels and list lengths (422 ``invalid_batch`` naming the
  location); a family that repeats a label set is refused by the store (422 ``invalid_batch``);
- ``max_series_per_batch`` samples over all families (422 ``too_many_series``).

One limit refuses series, not batches: ``max_series_per_node`` bounds a node's *active* series
(written within ``active_series_window_seconds``). The store checks it only when a batch brings
series the index does not know; past it, the batch is still stored with the series the node
already has, and only the new series beyond the limit are left out. The acknowledgement lists
them per family (``Ack.refused``, reason ``cardinality_limit``), and they are counted in
``dcmon_server_ingest_refused_series_total{reason}`` and, per node,
``dcmon_node_refused_series_total{instance,reason}``.

Non-finite values (NaN, +-Inf): the agent drops such readings before encoding and logs them
once; the wire schema refuses a batch that still carries one (422 ``invalid_batch``), so a
stored value is always a number.

The batch's GPU events and job usage are written by the store in the same transaction as its
samples, and only for a batch not seen before: a batch is stored whole or not at all, so a
re-sent one (same node, seq and timestamp) is acknowledged as ``duplicate`` with nothing left
to complete.

An acknowledgement carries the node's open benchmark request, if any (``Ack.bench``), from the
``orders`` seam, whichever token wrote the batch (a fleet ingest token may report on it too).

A bulk request (many batches of one agent's backlog) is decoded and validated record by record,
then every valid record's write is queued before any is waited on, so they share the writer's
group commits; each record gets its own outcome.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from agent.wire.bench import BenchOrder
from agent.wire.codec import WireError
from agent.wire.protocol import UNKNOWN_LAYOUT
from agent.wire.schema import Ack, Batch, CompactBatch, RefusedSeries
from server.auth import Principal
from server.errors import ApiError, ProblemDetail
from server.events.store import write_events
from server.exposition.self_metrics import ServerMetrics
from server.ingest.admission import Admission
from server.ingest.fast_decode import decode_batch
from server.jobs.fold import write_usages
from server.latest.cache import LatestCache, NodeLatest, StalePolicy
from server.latest.compact import CompactFamilies
from server.settings import ServerSettings
from server.storage.series_index import RepeatedSeriesError, canonical_labels
from server.storage.store import (
    Family,
    PendingWrite,
    StorageUnavailableError,
    Store,
    UnknownLayoutError,
    WriteResult,
)

_log = logging.getLogger(__name__)

CARDINALITY_LIMIT = "cardinality_limit"
"""Reason code of series refused for the node's active-series limit."""
REFUSAL_LOG_SECONDS = 3600.0

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
    max_series_per_batch: int = 20_000
    max_series_per_node: int = 20_000
    max_inflight: int = 32
    retry_after_seconds: float = 5.0
    write_timeout_seconds: float = 8.0
    queue_seconds: float = 1.0
    queue_max: int | None = None

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> IngestLimits:
        return cls(
            max_decompressed_bytes=settings.max_decompressed_bytes,
            max_future_seconds=settings.max_future_seconds,
            max_series_per_batch=settings.max_series_per_batch,
            max_series_per_node=settings.max_series_per_node,
            max_inflight=settings.max_inflight_ingest,
            retry_after_seconds=settings.ingest_retry_after_seconds,
            write_timeout_seconds=settings.ingest_write_timeout_seconds,
            queue_seconds=settings.ingest_queue_seconds,
            queue_max=settings.ingest_queue_max,
        )


@dataclass(frozen=True)
class RecordOutcome:
    """What became of one record of a bulk request: an acknowledgement or a refusal."""

    seq: int | None
    ack: Ack | None = None
    error: ApiError | None = None


@dataclass(frozen=True)
class Started:
    """A batch whose write is queued (``IngestService.begin``)."""

    prepared: _Prepared
    pending: PendingWrite
    now: float
    skew: float | None


@dataclass(frozen=True)
class _Prepared:
    """A decoded, validated batch ready to be written."""

    batch: Batch
    families: list[Family]
    layouts: bool = False


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
        rng: Callable[[], float] = random.random,
        orders: Callable[[str], BenchOrder | None] = lambda _node_id: None,
    ) -> None:
        """Args:
        orders: node id -> its open benchmark request's order, for the acknowledgement
            (``server/bench/orders.py``; a dict lookup, as this is the hot path).
        """
        self._orders = orders
        self._policy = policy
        self._store = store
        self._latest = latest
        self._metrics = metrics
        self._limits = limits
        self._clock = clock
        self._refusal_logged: dict[str, float] = {}
        self.admission = Admission(
            limits.max_inflight,
            limits.retry_after_seconds,
            rng,
            wait_seconds=limits.queue_seconds,
            max_waiting=limits.queue_max,
        )

    @property
    def write_timeout_seconds(self) -> float:
        return self._limits.write_timeout_seconds

    def ingest(
        self,
        body: bytes,
        content_encoding: str | None,
        caller: Principal,
        sent_at: float | None = None,
        layouts: bool = False,
    ) -> Ack:
        """Store one batch.

        Args:
            sent_at: the agent's wall clock when it sent the request (``X-Dcmon-Sent-At``).
            layouts: the agent asked for layout keys (``protocol.LAYOUTS_HEADER``): a full
                batch's acknowledgement carries one.

        Raises:
            ApiError: the batch is refused (nothing of it is stored).
        """
        return self.complete(self.begin(body, content_encoding, caller, sent_at, layouts))

    def begin(
        self,
        body: bytes,
        content_encoding: str | None,
        caller: Principal,
        sent_at: float | None = None,
        layouts: bool = False,
    ) -> Started:
        """``ingest`` up to the queued write, without waiting for it (``complete`` does): an
        asynchronous caller can await ``Started.pending`` instead of holding a thread.

        Raises:
            ApiError: the batch is refused (nothing of it is stored).
        """
        batch = self._decode(body, content_encoding)
        now = self._clock()
        skew = None if sent_at is None else sent_at - now
        prepared = self._validate(batch, caller, now, skew, layouts)
        return Started(prepared, self._start(prepared, now), now, skew)

    def complete(self, started: Started) -> Ack:
        """Wait for a ``begin``-ed write (within ``write_timeout_seconds`` in all), then update
        the latest cache; returns the acknowledgement.

        Raises:
            ApiError: the write failed or timed out (nothing of it is stored).
        """
        return self._finish(started.prepared, started.pending, started.now, started.skew)

    def ingest_bulk(
        self,
        records: Sequence[bytes],
        caller: Principal,
        sent_at: float | None = None,
    ) -> list[RecordOutcome]:
        """Store many batches (gzip JSON each); one outcome per record, in order.

        Every record is decoded and validated before any is written; the valid ones' writes are
        all queued before the first is waited on, so they commit in as few groups as possible.
        A bulk answer carries no layout keys, so none are made here (compact records are
        stored through the layouts a single push made).
        """
        now = self._clock()
        skew = None if sent_at is None else sent_at - now
        staged: list[tuple[int | None, _Prepared | ApiError]] = []
        for record in records:
            seq: int | None = None
            try:
                batch = self._decode(record, "gzip")
                seq = batch.seq
                staged.append((seq, self._validate(batch, caller, now, skew, layouts=False)))
            except ApiError as exc:
                staged.append((seq, exc))
        started: list[tuple[_Prepared, PendingWrite] | ApiError] = []
        for _seq, item in staged:
            if isinstance(item, ApiError):
                started.append(item)
                continue
            try:
                started.append((item, self._start(item, now)))
            except ApiError as exc:
                started.append(exc)
        outcomes: list[RecordOutcome] = []
        for (seq, _item), work in zip(staged, started, strict=True):
            if isinstance(work, ApiError):
                outcomes.append(RecordOutcome(seq, error=work))
                continue
            try:
                outcomes.append(RecordOutcome(seq, ack=self._finish(*work, now, skew)))
            except ApiError as exc:
                outcomes.append(RecordOutcome(seq, error=exc))
        return outcomes

    def _decode(self, body: bytes, content_encoding: str | None) -> Batch:
        try:
            return decode_batch(body, content_encoding, self._limits.max_decompressed_bytes)
        except WireError as exc:
            raise ApiError(
                _STATUS_OF_WIRE_ERROR.get(exc.code, 400),
                exc.code,
                exc.message,
                [ProblemDetail(p.location, p.message) for p in exc.problems],
            ) from None

    def _validate(
        self, batch: Batch, caller: Principal, now: float, skew: float | None, layouts: bool
    ) -> _Prepared:
        """Raises: ApiError for a batch refused before anything is written."""
        node_id = batch.node.node_id
        if not caller.may_write_node(node_id):
            raise ApiError(
                403,
                "node_mismatch",
                f"this token may not write node {node_id} (it belongs to "
                f"{caller.node_id or 'no node'}); the agent must use its own node's token",
            )
        try:
            self._check_time(batch, now)
            self._check_name(batch, now)
            self._check_events(batch, now)
            self._check_size(batch)
            families = _families(batch)
            _check_unique_families(families)
            _check_unique_pairings(batch)
            if isinstance(batch, CompactBatch):
                self._held_layout(batch)  # refused at once, before the writer sees it
        except ApiError:
            if skew is not None:  # a refused batch still tells how far off the node's clock is
                self._latest.set_clock_skew(node_id, skew)
            raise
        return _Prepared(batch, families, layouts)

    def _held_layout(self, batch: CompactBatch) -> None:
        try:
            self._store.held_layout(batch)
        except UnknownLayoutError as exc:
            raise _unknown_layout(exc) from None

    def _start(self, prepared: _Prepared, now: float) -> PendingWrite:
        batch = prepared.batch
        try:
            return self._store.start_write(
                batch,
                prepared.families,
                received_at=now,
                writers=[
                    lambda conn, node_pk: write_events(conn, node_pk, batch.events),
                    lambda conn, node_pk: write_usages(conn, node_pk, batch.timestamp, batch.jobs),
                ],
                max_series_per_node=self._limits.max_series_per_node,
                timeout_seconds=self._limits.write_timeout_seconds,
                layouts=prepared.layouts,
            )
        except StorageUnavailableError as exc:
            raise self._unavailable(exc) from None

    def _finish(
        self, prepared: _Prepared, pending: PendingWrite, now: float, skew: float | None
    ) -> Ack:
        """Wait for the write, then update the latest cache; returns the acknowledgement."""
        batch = prepared.batch
        try:
            result = pending.result()
        except RepeatedSeriesError as exc:
            raise ApiError(422, "invalid_batch", str(exc)) from None
        except UnknownLayoutError as exc:
            raise _unknown_layout(exc) from None
        except StorageUnavailableError as exc:
            raise self._unavailable(exc) from None
        order = self._orders(batch.node.node_id)
        key = result.layout.key if prepared.layouts and result.layout is not None else None
        if result.duplicate and self._latest.touch(batch.node.node_id, now, skew):
            return Ack(status="duplicate", seq=batch.seq, samples=0, bench=order, layout=key)
        self._latest.update(
            NodeLatest(
                node_id=batch.node.node_id,
                name=batch.node.name,
                labels=dict(batch.node.labels),
                interval_seconds=batch.interval_seconds,
                last_push=now,
                batch_ts=batch.timestamp,
                seq=batch.seq,
                families=_latest_families(prepared, result),
                clock_skew_seconds=skew,
            )
        )
        if result.duplicate:
            return Ack(status="duplicate", seq=batch.seq, samples=0, bench=order, layout=key)
        self._metrics.ingest_samples.inc(result.samples)
        refused = [
            RefusedSeries(metric=metric, series=count, reason=CARDINALITY_LIMIT)
            for metric, count in result.refused.items()
        ]
        if refused:
            self._count_refused(batch.node.name, refused, now)
        return Ack(
            status="accepted",
            seq=batch.seq,
            samples=result.samples,
            refused=refused,
            bench=order,
            layout=key,
        )

    def _count_refused(self, node: str, refused: list[RefusedSeries], now: float) -> None:
        """Count refused series; log it for a node at most once per ``REFUSAL_LOG_SECONDS``."""
        total = sum(item.series for item in refused)
        self._metrics.ingest_refused_series.labels(CARDINALITY_LIMIT).inc(total)
        self._metrics.node_refused_series.labels(node, CARDINALITY_LIMIT).inc(total)
        if now - self._refusal_logged.get(node, -math.inf) < REFUSAL_LOG_SECONDS:
            return
        self._refusal_logged[node] = now
        _log.warning(
            "node %s is at its limit of %d active series (max_series_per_node): %d new series "
            "not stored (%s); its other series are stored",
            node,
            self._limits.max_series_per_node,
            total,
            ", ".join(f"{item.metric}: {item.series}" for item in refused),
        )

    def _unavailable(self, exc: StorageUnavailableError) -> ApiError:
        _log.warning("ingest refused for now, storage unavailable: %s", exc)
        return ApiError(
            503,
            "storage_unavailable",
            f"storage is unavailable ({exc}); the batch was not stored, retry later",
            headers=self.admission.retry_after(),
        )

    def _check_size(self, batch: Batch) -> None:
        samples = batch.sample_count()
        if samples > self._limits.max_series_per_batch:
            raise ApiError(
                422,
                "too_many_series",
                f"the batch has {samples} samples, more than the limit of "
                f"{self._limits.max_series_per_batch} per batch (max_series_per_batch)",
            )

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
                "node_scrape_collector_success",
                [({"collector": c.name}, 1.0 if c.success else 0.0) for c in batch.collectors],
            )
        )
        families.append(
            (
                "node_scrape_collector_duration_seconds",
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


def _unknown_layout(exc: UnknownLayoutError) -> ApiError:
    return ApiError(409, UNKNOWN_LAYOUT, str(exc))


def _latest_families(
    prepared: _Prepared, result: WriteResult
) -> Mapping[str, Sequence[tuple[Mapping[str, str], float]]]:
    """Returns: the batch's families as the latest cache keeps them: a compact batch's through
    its layout, read only when asked (``CompactFamilies``), beside its own few families."""
    stored = _stored_families(prepared.families, result.refused_keys)
    batch = prepared.batch
    if isinstance(batch, CompactBatch) and result.layout is not None:
        layout = result.layout
        return CompactFamilies(layout.names, layout.labels, layout.offsets, batch.values, stored)
    return stored


def _stored_families(
    families: Sequence[Family], refused: frozenset[tuple[str, str]]
) -> dict[str, Sequence[tuple[Mapping[str, str], float]]]:
    """Returns: the families as stored, without the series the store refused (so that the
    latest values, and /metrics, hold no series that history does not)."""
    if not refused:
        return dict(families)
    metrics = {metric for metric, _ in refused}
    return {
        metric: (
            [item for item in samples if (metric, canonical_labels(item[0])) not in refused]
            if metric in metrics
            else samples
        )
        for metric, samples in families
    }
