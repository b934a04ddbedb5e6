"""The store: write accepted batches, read nodes, GPUs and series history, apply retention.

Stage: ingest -> storage. One batch is one transaction: the node row, the batch's idempotency
record, the GPU inventory, new series and all samples commit together or not at all, and the
caller acknowledges only after the commit. Writes are serialised (SQLite has one writer).
A re-sent batch (same node, seq and timestamp) is recognised and not stored twice; samples are
also unique per (series, timestamp), so even an unrecognised repeat cannot duplicate data.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from agent.wire.schema import Batch, GpuFacts
from server.storage.tables import GpuRow, IngestedBatchRow, NodeRow, SampleRow, SeriesRow

_log = logging.getLogger(__name__)

Family = tuple[str, Sequence[tuple[Mapping[str, str], float]]]
BatchWriter = Callable[[Connection, int], object]
"""Stores one part of a batch inside the batch's transaction: (connection, node pk)."""
_DELETE_CHUNK = 500

_nodes: Table = NodeRow.__table__  # type: ignore[assignment]
_gpus: Table = GpuRow.__table__  # type: ignore[assignment]
_series: Table = SeriesRow.__table__  # type: ignore[assignment]
_samples: Table = SampleRow.__table__  # type: ignore[assignment]
_batches: Table = IngestedBatchRow.__table__  # type: ignore[assignment]


def canonical_labels(labels: Mapping[str, str]) -> str:
    """Returns: the label set as compact JSON with sorted keys (the series key)."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class WriteResult:
    duplicate: bool
    samples: int
    node_pk: int


@dataclass(frozen=True)
class NodeRecord:
    pk: int
    node_id: str
    name: str
    hostname: str
    labels: dict[str, str]
    interval_seconds: float
    first_seen: float
    last_push: float
    last_batch_ts: float
    last_seq: int
    host_facts: dict[str, Any]
    driver_version: str | None
    gpu_status: str


@dataclass(frozen=True)
class GpuRecord:
    index: int
    uuid: str
    model: str
    pci_bus_id: str
    serial: str | None
    vbios_version: str | None
    memory_total_bytes: int | None
    first_seen: float
    last_seen: float


@dataclass(frozen=True)
class SeriesRecord:
    id: int
    node_pk: int
    metric: str
    labels: dict[str, str]


class Store:
    """All database access of the server."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._write_lock = threading.Lock()
        self._series_ids: dict[tuple[int, str, str], int] = {}

    # -- writes ----------------------------------------------------------------------------

    def write_batch(
        self,
        batch: Batch,
        families: Sequence[Family],
        received_at: float,
        writers: Sequence[BatchWriter] = (),
    ) -> WriteResult:
        """Store one batch (its samples at the batch's timestamp) in one transaction.

        Args:
            writers: more stores' parts of the batch (events, job usage), run inside the same
                transaction for a batch not seen before, so a batch is stored whole or not at all.
        """
        ts_ms = round(batch.timestamp * 1000)
        with self._write_lock:
            new_series: dict[tuple[int, str, str], int] = {}
            with self._engine.begin() as conn:
                node_pk = self._upsert_node(conn, batch, received_at)
                if self._seen_before(conn, node_pk, batch, received_at):
                    return WriteResult(True, 0, node_pk)
                if batch.inventory is not None:
                    self._upsert_gpus(conn, node_pk, batch.inventory.gpus, received_at)
                for writer in writers:
                    writer(conn, node_pk)
                keys = [
                    (metric, canonical_labels(labels), value)
                    for metric, samples in families
                    for labels, value in samples
                ]
                ids = self._series_for(conn, node_pk, {(m, lab) for m, lab, _ in keys}, new_series)
                rows = [
                    {"series_id": ids[(metric, labels)], "ts_ms": ts_ms, "value": value}
                    for metric, labels, value in keys
                ]
                if rows:
                    conn.execute(_insert_ignore(conn, _samples), rows)
            self._series_ids.update(new_series)  # only after the commit succeeded
        return WriteResult(False, len(rows), node_pk)

    def _upsert_node(self, conn: Connection, batch: Batch, received_at: float) -> int:
        node = batch.node
        row = conn.execute(
            select(_nodes.c.id, _nodes.c.last_batch_ts, _nodes.c.last_seq).where(
                _nodes.c.node_id == node.node_id
            )
        ).first()
        values: dict[str, Any] = {
            "name": node.name,
            "hostname": node.hostname,
            "labels": dict(node.labels),
            "interval_seconds": batch.interval_seconds,
            "last_push": received_at,
        }
        if batch.inventory is not None:
            values["host_facts"] = batch.inventory.host.model_dump()
            values["driver_version"] = batch.inventory.driver_version
            values["gpu_status"] = batch.inventory.gpu_status
        if row is None:
            result = conn.execute(
                _nodes.insert().values(
                    node_id=node.node_id,
                    first_seen=received_at,
                    last_batch_ts=batch.timestamp,
                    last_seq=batch.seq,
                    **{"host_facts": {}, "driver_version": None, "gpu_status": "", **values},
                )
            )
            inserted = result.inserted_primary_key
            assert inserted is not None
            return int(inserted[0])
        pk = int(row.id)
        values["last_batch_ts"] = max(row.last_batch_ts, batch.timestamp)
        values["last_seq"] = max(row.last_seq, batch.seq)
        conn.execute(update(_nodes).where(_nodes.c.id == pk).values(**values))
        return pk

    def _seen_before(
        self, conn: Connection, node_pk: int, batch: Batch, received_at: float
    ) -> bool:
        """Record the batch; True if this exact batch (seq and timestamp) was stored before."""
        previous = conn.execute(
            select(_batches.c.batch_ts).where(
                _batches.c.node_pk == node_pk, _batches.c.seq == batch.seq
            )
        ).scalar()
        if previous == batch.timestamp:
            return True
        if previous is not None:
            _log.warning(
                "node %s reused batch number %d for a different tick (agent state reset?); "
                "storing it",
                batch.node.name,
                batch.seq,
            )
            conn.execute(
                update(_batches)
                .where(_batches.c.node_pk == node_pk, _batches.c.seq == batch.seq)
                .values(batch_ts=batch.timestamp, received_at=received_at)
            )
        else:
            conn.execute(
                _batches.insert().values(
                    node_pk=node_pk,
                    seq=batch.seq,
                    batch_ts=batch.timestamp,
                    received_at=received_at,
                )
            )
        return False

    def _upsert_gpus(
        self, conn: Connection, node_pk: int, gpus: Iterable[GpuFacts], seen: float
    ) -> None:
        existing = {
            row.uuid: row.id
            for row in conn.execute(
                select(_gpus.c.id, _gpus.c.uuid).where(_gpus.c.node_pk == node_pk)
            )
        }
        for gpu in gpus:
            values = {
                "gpu_index": gpu.index,
                "model": gpu.model,
                "pci_bus_id": gpu.pci_bus_id,
                "serial": gpu.serial,
                "vbios_version": gpu.vbios_version,
                "memory_total_bytes": gpu.memory_total_bytes,
                "last_seen": seen,
            }
            if gpu.uuid in existing:
                conn.execute(update(_gpus).where(_gpus.c.id == existing[gpu.uuid]).values(values))
            else:
                conn.execute(
                    _gpus.insert().values(node_pk=node_pk, uuid=gpu.uuid, first_seen=seen, **values)
                )

    def _series_for(
        self,
        conn: Connection,
        node_pk: int,
        wanted: set[tuple[str, str]],
        new_series: dict[tuple[int, str, str], int],
    ) -> dict[tuple[str, str], int]:
        """Returns: (metric, labels JSON) -> series id, creating missing series."""
        ids = {
            key: series_id
            for key in wanted
            if (series_id := self._series_ids.get((node_pk, *key))) is not None
        }
        missing = wanted - ids.keys()
        if not missing:
            return ids
        conn.execute(
            _insert_ignore(conn, _series),
            [
                {"node_pk": node_pk, "metric": metric, "labels": labels}
                for metric, labels in missing
            ],
        )
        for row in conn.execute(
            select(_series.c.id, _series.c.metric, _series.c.labels).where(
                _series.c.node_pk == node_pk
            )
        ):
            key = (row.metric, row.labels)
            if key in wanted:
                ids[key] = row.id
            new_series[(node_pk, row.metric, row.labels)] = row.id
        return ids

    # -- reads -----------------------------------------------------------------------------

    def nodes(self) -> list[NodeRecord]:
        with self._engine.connect() as conn:
            return [
                _node_record(row) for row in conn.execute(select(_nodes).order_by(_nodes.c.name))
            ]

    def node(self, key: str) -> NodeRecord | None:
        """Returns: the node whose name or node id is ``key`` (newest push wins on a name)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(_nodes)
                .where((_nodes.c.node_id == key) | (_nodes.c.name == key))
                .order_by(_nodes.c.last_push.desc())
                .limit(1)
            ).first()
        return None if row is None else _node_record(row)

    def gpus(self, node_pk: int) -> list[GpuRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_gpus).where(_gpus.c.node_pk == node_pk).order_by(_gpus.c.gpu_index)
            )
            return [_gpu_record(row) for row in rows]

    def gpus_by_node(self) -> dict[int, list[GpuRecord]]:
        """Returns: node pk -> its GPUs by index, for every node, in one query."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(_gpus).order_by(_gpus.c.node_pk, _gpus.c.gpu_index))
            result: dict[int, list[GpuRecord]] = {}
            for row in rows:
                result.setdefault(row.node_pk, []).append(_gpu_record(row))
            return result

    def gpu_counts(self) -> dict[int, int]:
        """Returns: node pk -> number of GPUs in its inventory."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(_gpus.c.node_pk, func.count()).group_by(_gpus.c.node_pk))
            return {int(node_pk): int(count) for node_pk, count in rows}

    def series(self, metric: str) -> list[SeriesRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(_series).where(_series.c.metric == metric))
            return [
                SeriesRecord(row.id, row.node_pk, row.metric, json.loads(row.labels))
                for row in rows
            ]

    def samples(
        self, series_ids: Sequence[int], start_ms: int, end_ms: int, limit: int
    ) -> dict[int, list[tuple[int, float]]]:
        """Returns: series id -> [(ts_ms, value)] in time order, within [start_ms, end_ms].

        At most ``limit`` + 1 samples are read in total, so a caller can tell "too many".
        """
        result: dict[int, list[tuple[int, float]]] = {series_id: [] for series_id in series_ids}
        if not series_ids:
            return result
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_samples.c.series_id, _samples.c.ts_ms, _samples.c.value)
                .where(
                    _samples.c.series_id.in_(series_ids),
                    _samples.c.ts_ms >= start_ms,
                    _samples.c.ts_ms <= end_ms,
                )
                .order_by(_samples.c.series_id, _samples.c.ts_ms)
                .limit(limit + 1)
            )
            for row in rows:
                result[row.series_id].append((row.ts_ms, row.value))
        return result

    def samples_at(self, node_pk: int, ts_ms: int) -> list[tuple[str, dict[str, str], float]]:
        """Returns: every (metric, labels, value) the node stored at one timestamp."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_series.c.metric, _series.c.labels, _samples.c.value)
                .join(_samples, _samples.c.series_id == _series.c.id)
                .where(_series.c.node_pk == node_pk, _samples.c.ts_ms == ts_ms)
            )
            return [(row.metric, json.loads(row.labels), row.value) for row in rows]

    def ping(self) -> None:
        """Raises if the database cannot be reached."""
        with self._engine.connect() as conn:
            conn.execute(select(func.count()).select_from(_nodes))

    # -- retention -------------------------------------------------------------------------

    def delete_samples_before(self, ts_ms: int) -> int:
        """Delete samples older than ``ts_ms``, a few hundred series per transaction."""
        with self._engine.connect() as conn:
            series_ids = [row.id for row in conn.execute(select(_series.c.id))]
        deleted = 0
        for start in range(0, len(series_ids), _DELETE_CHUNK):
            chunk = series_ids[start : start + _DELETE_CHUNK]
            with self._write_lock, self._engine.begin() as conn:
                result = conn.execute(
                    delete(_samples).where(
                        _samples.c.series_id.in_(chunk), _samples.c.ts_ms < ts_ms
                    )
                )
                deleted += result.rowcount or 0
        return deleted

    def delete_batch_records_before(self, received_before: float) -> int:
        with self._write_lock, self._engine.begin() as conn:
            result = conn.execute(delete(_batches).where(_batches.c.received_at < received_before))
            return result.rowcount or 0


def _insert_ignore(conn: Connection, table: Table) -> Insert:
    """Returns: INSERT ... ON CONFLICT DO NOTHING for this connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _gpu_record(row: Any) -> GpuRecord:
    return GpuRecord(
        index=row.gpu_index,
        uuid=row.uuid,
        model=row.model,
        pci_bus_id=row.pci_bus_id,
        serial=row.serial,
        vbios_version=row.vbios_version,
        memory_total_bytes=row.memory_total_bytes,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
    )


def _node_record(row: Any) -> NodeRecord:
    return NodeRecord(
        pk=row.id,
        node_id=row.node_id,
        name=row.name,
        hostname=row.hostname,
        labels=dict(row.labels or {}),
        interval_seconds=row.interval_seconds,
        first_seen=row.first_seen,
        last_push=row.last_push,
        last_batch_ts=row.last_batch_ts,
        last_seq=row.last_seq,
        host_facts=dict(row.host_facts or {}),
        driver_version=row.driver_version,
        gpu_status=row.gpu_status,
    )
