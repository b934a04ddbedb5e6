"""The store: write accepted batches; read nodes, GPUs and series.

Stage: ingest -> storage. One batch is one unit of work on the single writer (``writer.py``):
the node row, the batch's idempotency record, the GPU inventory, events and job usage, new
series, the ``last_seen_ms`` of series not written for a while, and the batch's head row commit
together or not at all, and the caller acknowledges only after the commit. A re-sent batch
(same node, seq and timestamp) is recognised and not stored twice; head rows are also unique
per (node, timestamp), and a second batch at a timestamp already stored only adds the series
the first did not have, so even an unrecognised repeat cannot duplicate a sample. History reads
are in ``reader.py``, compaction in ``compactor.py``, the deletion of series nobody writes in
``lifecycle.py``.

A node may have at most ``max_series_per_node`` active series (written within the active
window): past it, a batch is stored without the new series that do not fit, which the result
lists (``WriteResult.refused``). Series are created with INSERT ... ON CONFLICT DO NOTHING and
then read back, so server processes sharing one PostgreSQL may create the same series at once.

Errors of the write path: ``RepeatedSeriesError`` refuses a batch for good;
``StorageUnavailableError`` wraps what may pass (the database locked or unreachable, the
writer closed, stopped or dead, a write past its time limit), so callers can ask the agent to
retry instead of failing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, case, delete, func, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from agent.wire.schema import Batch, GpuFacts
from server.storage import head
from server.storage.runs import IN_CHUNK, in_chunks
from server.storage.series_index import IndexedSeries, Labels, SeriesIndex, family_ids
from server.storage.tables import GpuRow, HeadChunkRow, IngestedBatchRow, NodeRow, SeriesRow
from server.storage.writer import Writer, WriterClosedError, WriterDiedError, on_commit

_log = logging.getLogger(__name__)

Family = tuple[str, Sequence[tuple[Mapping[str, str], float]]]
BatchWriter = Callable[[Connection, int], object]
"""Stores one part of a batch inside the batch's transaction: (connection, node pk)."""
_nodes: Table = NodeRow.__table__  # type: ignore[assignment]
_gpus: Table = GpuRow.__table__  # type: ignore[assignment]
_series: Table = SeriesRow.__table__  # type: ignore[assignment]
_head: Table = HeadChunkRow.__table__  # type: ignore[assignment]
_batches: Table = IngestedBatchRow.__table__  # type: ignore[assignment]

# Failures that say "not now" rather than "never": a locked SQLite file, PostgreSQL refusing or
# dropping connections, a pool with no connection to spare, a writer shut down for a restart
# (or stopped, or whose thread died running the write).
_TRANSIENT: tuple[type[Exception], ...] = (
    WriterClosedError,
    WriterDiedError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)


class StorageUnavailableError(RuntimeError):
    """The database cannot take the write now; nothing of it was kept, a retry may succeed."""


class PendingWrite:
    """A batch write queued on the writer; ``result`` waits for its commit, within a limit."""

    def __init__(self, future: Future[WriteResult], timeout_seconds: float | None = None) -> None:
        self._future = future
        self._timeout = timeout_seconds

    def result(self) -> WriteResult:
        """Returns: the write's outcome once committed.

        Raises:
            StorageUnavailableError: the database could not take it now (nothing kept), or the
                write did not finish within the time limit (it is withdrawn if it has not
                started; if it has, it may still commit, and the retry is recognised).
            RepeatedSeriesError: the batch is refused (nothing kept).
        """
        if not wait([self._future], self._timeout).done:
            self._future.cancel()
            raise StorageUnavailableError(
                f"the write did not finish within {self._timeout:g}s (the database is slow or "
                "stuck)"
            )
        try:
            return self._future.result()
        except Exception as exc:
            unavailable = as_unavailable(exc)
            if unavailable is None:
                raise
            raise unavailable from exc


def as_unavailable(exc: Exception) -> StorageUnavailableError | None:
    """Returns: ``exc`` as a ``StorageUnavailableError`` when it may pass (the database locked,
    unreachable or restarted, the writer closed), else None (a bug or a refusal)."""
    transient = isinstance(exc, _TRANSIENT) or (
        isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    )
    return StorageUnavailableError(_describe(exc)) if transient else None


@dataclass(frozen=True)
class WriteResult:
    duplicate: bool
    samples: int
    node_pk: int
    refused: dict[str, int] = field(default_factory=dict)
    """Metric -> how many of its new series were refused (the node's series limit)."""
    refused_keys: frozenset[tuple[str, str]] = frozenset()
    """(metric, canonical labels) of each refused series."""


@dataclass(frozen=True)
class NodeNaming:
    """What series selection needs of a node: its name (``instance``) and labels."""

    pk: int
    name: str
    labels: dict[str, str]


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
    """Node, GPU and series records, and the batch write path."""

    def __init__(
        self,
        engine: Engine,
        writer: Writer,
        index: SeriesIndex,
        active_window_seconds: float = 3600.0,
    ) -> None:
        """Args:
        active_window_seconds: a series is *active* while written within this long; the
            per-node series limit counts active series, and a series' ``last_seen_ms`` is
            written again once it is a quarter of this old (``touch_ms``).
        """
        self._engine = engine
        self._writer = writer
        self.index = index
        self.active_window_ms = round(active_window_seconds * 1000)
        self.touch_ms = self.active_window_ms // 4
        # Series created by earlier jobs of the writer's current transaction, per node: not yet
        # in the index (it follows commits), but they count towards the node's limit. Touched
        # only on the writer thread; reset when a job runs on another transaction's connection.
        self._pending_conn: Connection | None = None
        self._pending_series: dict[int, set[tuple[str, str]]] = {}

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def writer(self) -> Writer:
        return self._writer

    def load_index(self) -> int:
        """Bring the series index up to the database: add the series it lacks (created by
        other server processes), forget the ones whose rows are gone (deleted by another
        process's lifecycle); returns the number of series."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(
                    _series.c.id,
                    _series.c.node_pk,
                    _series.c.metric,
                    _series.c.labels,
                    _series.c.last_seen_ms,
                )
            ).all()
        self.index.add(
            (IndexedSeries(row.id, row.node_pk, row.metric, row.labels) for row in rows),
            {row.id: row.last_seen_ms for row in rows},
        )
        if rows:
            # Series created after the read have higher ids (ids only grow): keep those.
            stored = {row.id for row in rows}
            newest = max(stored)
            self.index.forget([i for i in self.index.ids() if i < newest and i not in stored])
        return len(self.index)

    # -- writes ----------------------------------------------------------------------------

    def write_batch(
        self,
        batch: Batch,
        families: Sequence[Family],
        received_at: float,
        writers: Sequence[BatchWriter] = (),
        max_series_per_node: int | None = None,
    ) -> WriteResult:
        """Store one batch (its samples at the batch's timestamp) as one unit of work.

        Args:
            writers: more stores' parts of the batch (events, job usage), run inside the same
                transaction for a batch not seen before, so a batch is stored whole or not at all.
            max_series_per_node: store no more new series than keep the node's active series
                within this many; the others are refused (``WriteResult.refused``), the rest of
                the batch is stored.

        Raises:
            StorageUnavailableError, RepeatedSeriesError: see ``PendingWrite``.
        """
        return self.start_write(batch, families, received_at, writers, max_series_per_node).result()

    def start_write(
        self,
        batch: Batch,
        families: Sequence[Family],
        received_at: float,
        writers: Sequence[BatchWriter] = (),
        max_series_per_node: int | None = None,
        timeout_seconds: float | None = None,
    ) -> PendingWrite:
        """Queue ``write_batch``'s work without waiting: batches queued together (a bulk
        request) share one group commit. ``timeout_seconds`` bounds ``PendingWrite.result``.

        Raises:
            StorageUnavailableError: the writer is closed.
        """
        try:
            future = self._writer.enqueue(
                lambda conn: self._write_batch(
                    conn, batch, families, received_at, writers, max_series_per_node
                )
            )
        except WriterClosedError as exc:
            raise StorageUnavailableError(str(exc)) from exc
        return PendingWrite(future, timeout_seconds)

    def _write_batch(
        self,
        conn: Connection,
        batch: Batch,
        families: Sequence[Family],
        received_at: float,
        writers: Sequence[BatchWriter],
        max_series_per_node: int | None,
    ) -> WriteResult:
        node_pk = self._upsert_node(conn, batch, received_at)
        if self._seen_before(conn, node_pk, batch, received_at):
            return WriteResult(True, 0, node_pk)
        now_ms = round(received_at * 1000)
        # A repeated series refuses the batch: it rolls back only what is above.
        plan = self._plan(node_pk, families)
        touched = self._touch(conn, plan, now_ms)
        if plan.missing and max_series_per_node is not None:
            self._limit(conn, node_pk, plan, max_series_per_node, now_ms)
        if batch.inventory is not None:
            self._upsert_gpus(conn, node_pk, batch.inventory.gpus, received_at)
        for writer in writers:
            writer(conn, node_pk)
        ids, values = self._resolve(conn, node_pk, plan, now_ms, touched)
        if ids:
            self._write_head(conn, node_pk, round(batch.timestamp * 1000), ids, values)
        return WriteResult(
            False, len(ids), node_pk, dict(plan.refused), frozenset(plan.refused_keys)
        )

    def _touch(self, conn: Connection, plan: _SeriesPlan, now_ms: int) -> list[int]:
        """Write ``last_seen_ms`` of the batch's known series that were last written more than
        ``touch_ms`` ago (one UPDATE per chunk, for a node once per ``touch_ms``); returns them.

        A series that another server process deleted meanwhile (its row is gone) is forgotten
        and moved to the plan's missing series, to be created again.
        """
        stale = self.index.stale(
            [series_id for series_id in plan.ids if series_id is not None], now_ms - self.touch_ms
        )
        if not stale:
            return []
        found: set[int] = set()
        for chunk in in_chunks(sorted(set(stale))):
            rows = conn.execute(
                update(_series)
                .where(_series.c.id.in_(chunk))
                .values(last_seen_ms=now_ms)
                .returning(_series.c.id)
            )
            found.update(row.id for row in rows)
        gone = {series_id for series_id in stale if series_id not in found}
        if gone:
            _log.info("%d series were deleted by another server process; recreating", len(gone))
            for item in self.index.forget(gone):
                key = (item.metric, item.labels_json)
                positions = [i for i, series_id in enumerate(plan.ids) if series_id == item.id]
                for position in positions:
                    plan.ids[position] = None
                plan.missing.setdefault(key, []).extend(positions)
        return sorted(found)

    def _limit(
        self, conn: Connection, node_pk: int, plan: _SeriesPlan, limit: int, now_ms: int
    ) -> None:
        """Refuse the plan's new series that would take the node past ``limit`` active series
        (written within the active window); they move from ``missing`` to ``refused``.

        Runs only when the batch has series the index does not know (never on the steady-state
        path); counts series created earlier in the same transaction, not yet in the index.
        New series are taken in the batch's order, so the same ones are refused every time.
        """
        if conn is not self._pending_conn:
            self._pending_conn = conn
            self._pending_series = {}
        pending = self._pending_series.setdefault(node_pk, set())
        new = [key for key in plan.missing if key not in pending]
        active = self.index.active_count(node_pk, now_ms - self.active_window_ms, now_ms)
        room = max(0, limit - active - len(pending))
        pending.update(new[:room])
        for key in new[room:]:
            for position in plan.missing.pop(key):
                plan.ids[position] = REFUSED
            plan.refused[key[0]] = plan.refused.get(key[0], 0) + 1
            plan.refused_keys.append(key)

    def _plan(self, node_pk: int, families: Sequence[Family]) -> _SeriesPlan:
        """Looks every sample's series up in the index (no database access).

        Raises:
            RepeatedSeriesError: a family repeats a label set.
        """
        ids: list[int | None] = []
        values: list[float] = []
        missing: dict[tuple[str, str], list[int]] = {}
        spans: list[tuple[str, list[Labels], int, int]] = []
        for metric, samples in families:
            labels = [item[0] for item in samples]
            known, keys = family_ids(self.index, node_pk, metric, labels)
            offset = len(ids)
            for position, series_id in enumerate(known):
                if series_id is None:
                    missing.setdefault((metric, keys[position]), []).append(offset + position)
            ids.extend(known)
            values.extend(item[1] for item in samples)
            spans.append((metric, labels, offset, len(ids)))
        return _SeriesPlan(ids, values, missing, spans)

    def _resolve(
        self, conn: Connection, node_pk: int, plan: _SeriesPlan, now_ms: int, touched: list[int]
    ) -> tuple[list[int], list[float]]:
        """Returns: the series id and value of every sample not refused, creating the series
        the plan lacks; after the commit, the index learns the new series and the touches."""
        ids = plan.ids
        created: list[IndexedSeries] = []
        if plan.missing:
            created = self._create_series(conn, node_pk, sorted(plan.missing), now_ms)
            for item in created:
                for position in plan.missing[(item.metric, item.labels_json)]:
                    ids[position] = item.id
        assert None not in ids, "every sample has a series after creation"
        known = cast(list[int], ids)
        resolved, values = known, plan.values
        if plan.refused:
            kept = [i for i, series_id in enumerate(known) if series_id != REFUSED]
            resolved = [known[i] for i in kept]
            values = [plan.values[i] for i in kept]
        layout = {
            metric: (labels, known[start:end])
            for metric, labels, start, end in plan.spans
            if metric not in plan.refused  # a family with refusals takes the slow path again
        }

        def publish() -> None:
            self.index.add(created, now_ms)
            self.index.touch(touched, now_ms)
            self.index.remember_layout(node_pk, layout)

        on_commit(conn, publish)
        return resolved, values

    def _create_series(
        self, conn: Connection, node_pk: int, keys: list[tuple[str, str]], now_ms: int
    ) -> list[IndexedSeries]:
        """Insert the series unless they exist (another server process may be creating the same
        ones at this moment), then read their ids.

        Raises:
            StorageUnavailableError: a series is not visible after its insert (another
                process deleted it, or this transaction reads an older snapshot); retry.
        """
        conn.execute(
            _insert_ignore(conn, _series),
            [
                {"node_pk": node_pk, "metric": metric, "labels": labels, "last_seen_ms": now_ms}
                for metric, labels in keys
            ],
        )
        created: list[IndexedSeries] = []
        by_metric: dict[str, list[str]] = {}
        for metric, labels in keys:
            by_metric.setdefault(metric, []).append(labels)
        for metric, label_sets in by_metric.items():
            for start in range(0, len(label_sets), IN_CHUNK):
                rows = conn.execute(
                    select(_series.c.id, _series.c.labels).where(
                        _series.c.node_pk == node_pk,
                        _series.c.metric == metric,
                        _series.c.labels.in_(label_sets[start : start + IN_CHUNK]),
                    )
                )
                created.extend(IndexedSeries(row.id, node_pk, metric, row.labels) for row in rows)
        if len(created) != len(keys):
            raise StorageUnavailableError(
                f"{len(keys) - len(created)} new series were not visible after their insert "
                "(deleted by another server process meanwhile?); retry"
            )
        return created

    def _write_head(
        self, conn: Connection, node_pk: int, ts_ms: int, ids: list[int], values: list[float]
    ) -> None:
        n, payload = head.pack(ids, values)
        if _insert_new(
            conn, _head, {"node_pk": node_pk, "ts_ms": ts_ms, "n": n, "payload": payload}
        ):
            return
        # Another batch of this node has this timestamp: keep its samples, add only new series.
        row = conn.execute(
            select(_head.c.n, _head.c.payload).where(
                _head.c.node_pk == node_pk, _head.c.ts_ms == ts_ms
            )
        ).one()
        merged_n, merged = head.merge((row.n, row.payload), (n, payload))
        conn.execute(
            update(_head)
            .where(_head.c.node_pk == node_pk, _head.c.ts_ms == ts_ms)
            .values(n=merged_n, payload=merged)
        )

    def _upsert_node(self, conn: Connection, batch: Batch, received_at: float) -> int:
        """One statement for a known node (UPDATE ... RETURNING): the hot path of ingest."""
        node = batch.node
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
        pk = conn.execute(
            update(_nodes)
            .where(_nodes.c.node_id == node.node_id)
            .values(
                last_batch_ts=case(
                    (_nodes.c.last_batch_ts < batch.timestamp, batch.timestamp),
                    else_=_nodes.c.last_batch_ts,
                ),
                last_seq=case((_nodes.c.last_seq < batch.seq, batch.seq), else_=_nodes.c.last_seq),
                **values,
            )
            .returning(_nodes.c.id)
        ).scalar()
        if pk is not None:
            return int(pk)
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

    def _seen_before(
        self, conn: Connection, node_pk: int, batch: Batch, received_at: float
    ) -> bool:
        """Record the batch; True if this exact batch (seq and timestamp) was stored before."""
        if _insert_new(
            conn,
            _batches,
            {
                "node_pk": node_pk,
                "seq": batch.seq,
                "batch_ts": batch.timestamp,
                "received_at": received_at,
            },
        ):
            return False
        previous = conn.execute(
            select(_batches.c.batch_ts).where(
                _batches.c.node_pk == node_pk, _batches.c.seq == batch.seq
            )
        ).scalar()
        if previous == batch.timestamp:
            return True
        _log.warning(
            "node %s reused batch number %d for a different tick (agent state reset?); storing it",
            batch.node.name,
            batch.seq,
        )
        conn.execute(
            update(_batches)
            .where(_batches.c.node_pk == node_pk, _batches.c.seq == batch.seq)
            .values(batch_ts=batch.timestamp, received_at=received_at)
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

    # -- reads -----------------------------------------------------------------------------

    def nodes(self) -> list[NodeRecord]:
        with self._engine.connect() as conn:
            return [
                _node_record(row) for row in conn.execute(select(_nodes).order_by(_nodes.c.name))
            ]

    def node_naming(self) -> dict[int, NodeNaming]:
        """Returns: node pk -> name and labels, without the rest of the node rows (for every
        history and discovery query, so it reads three columns only)."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(_nodes.c.id, _nodes.c.name, _nodes.c.labels))
            return {row.id: NodeNaming(row.id, row.name, dict(row.labels or {})) for row in rows}

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
        return [
            SeriesRecord(item.id, item.node_pk, item.metric, item.labels())
            for items in self.index.metric(metric).values()
            for item in items
        ]

    def ping(self) -> None:
        """Raises if the database cannot be reached."""
        with self._engine.connect() as conn:
            conn.execute(select(func.count()).select_from(_nodes))

    # -- retention -------------------------------------------------------------------------

    def delete_batch_records_before(self, received_before: float) -> int:
        def job(conn: Connection) -> int:
            result = conn.execute(delete(_batches).where(_batches.c.received_at < received_before))
            return result.rowcount or 0

        return self._writer.submit(job)


REFUSED = -1
"""The series id of a sample whose new series was refused (never a real id)."""


@dataclass
class _SeriesPlan:
    """A batch's samples looked up in the index: ids (None: series to create, ``REFUSED``:
    not stored) and values."""

    ids: list[int | None]
    values: list[float]
    missing: dict[tuple[str, str], list[int]]
    """(metric, canonical labels) of each series to create -> positions of its samples."""
    spans: list[tuple[str, list[Labels], int, int]]
    """Per family: metric, label list, and its samples' positions [start, end)."""
    refused: dict[str, int] = field(default_factory=dict)
    """Metric -> how many of its new series are refused."""
    refused_keys: list[tuple[str, str]] = field(default_factory=list)


def _describe(exc: Exception) -> str:
    """Returns: a one-line reason for a storage failure, without SQL text or parameters."""
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0][:200] if lines else 'no detail'}"


def _insert_ignore(conn: Connection, table: Table) -> Insert:
    """Returns: INSERT ... ON CONFLICT DO NOTHING for this connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _insert_new(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT unless the primary key exists; returns whether a row was inserted.

    Asks RETURNING rather than trusting rowcount, which psycopg reports as -1 here.
    """
    key = next(iter(table.primary_key.columns))
    return conn.execute(_insert_ignore(conn, table).returning(key), values).first() is not None


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
