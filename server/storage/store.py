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
lists (``WriteResult.refused``).

The series side of a write (lookups, the limit, creation) is ``series_writes.py``, the
batch record, GPU inventory and head row ``batch_rows.py``; node and GPU reads are
``records.py``. Errors: ``StorageUnavailableError`` (``errors.py``: retry later) and
``RepeatedSeriesError`` (``series_index.py``: refused for good). The records, the family type
and the storage error are re-exported here for the store's callers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, case, delete, func, select, update
from sqlalchemy.sql.dml import Update

from agent.wire.schema import Batch, CompactBatch
from server.storage.batch_rows import seen_before, upsert_gpus, write_head
from server.storage.batch_sql import update_node
from server.storage.errors import StorageUnavailableError, as_unavailable
from server.storage.layouts import Layout, UnknownLayoutError
from server.storage.naming import NamingCache
from server.storage.records import (
    GpuRecord,
    NodeNaming,
    NodeRecord,
    read_gpu_counts,
    read_gpus,
    read_gpus_by_node,
    read_node,
    read_node_naming,
    read_nodes,
)
from server.storage.series_index import IndexedSeries, SeriesIndex
from server.storage.series_writes import Family, SeriesPlan, SeriesWrites
from server.storage.tables import GpuRow, HeadChunkRow, IngestedBatchRow, NodeRow, SeriesRow
from server.storage.writer import Writer, WriterClosedError, on_commit

__all__ = [
    "BatchWriter",
    "Family",
    "GpuRecord",
    "NodeNaming",
    "NodeRecord",
    "PendingWrite",
    "SeriesRecord",
    "StorageUnavailableError",
    "Store",
    "UnknownLayoutError",
    "WriteResult",
    "as_unavailable",
]

_log = logging.getLogger(__name__)

BatchWriter = Callable[[Connection, int], object]
"""Stores one part of a batch inside the batch's transaction: (connection, node pk)."""
_nodes: Table = NodeRow.__table__  # type: ignore[assignment]
_gpus: Table = GpuRow.__table__  # type: ignore[assignment]
_series: Table = SeriesRow.__table__  # type: ignore[assignment]
_head: Table = HeadChunkRow.__table__  # type: ignore[assignment]
_batches: Table = IngestedBatchRow.__table__  # type: ignore[assignment]


def _update_node_statement() -> Update:
    """Returns: UPDATE nodes ... RETURNING id for a push with inventory, every value a bound
    parameter (``b_<column>``, and ``b_node_id``, ``b_ts``, ``b_seq``)."""
    columns = ["name", "hostname", "labels", "interval_seconds", "last_push"]
    columns += ["host_facts", "driver_version", "gpu_status"]
    ts = bindparam("b_ts", type_=_nodes.c.last_batch_ts.type)
    seq = bindparam("b_seq", type_=_nodes.c.last_seq.type)
    return (
        update(_nodes)
        .where(_nodes.c.node_id == bindparam("b_node_id", type_=_nodes.c.node_id.type))
        .values(
            last_batch_ts=case((_nodes.c.last_batch_ts < ts, ts), else_=_nodes.c.last_batch_ts),
            last_seq=case((_nodes.c.last_seq < seq, seq), else_=_nodes.c.last_seq),
            **{name: bindparam(f"b_{name}", type_=_nodes.c[name].type) for name in columns},
        )
        .returning(_nodes.c.id)
    )


_UPDATE_NODE_INVENTORY = _update_node_statement()


class PendingWrite:
    """A batch write queued on the writer; ``result`` waits for its commit, within a limit."""

    def __init__(self, future: Future[WriteResult], timeout_seconds: float | None = None) -> None:
        self._future = future
        self._timeout = timeout_seconds
        self._deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds

    @property
    def future(self) -> Future[WriteResult]:
        """The write's future, for a caller that awaits it (``asyncio.wrap_future``) before
        ``result``; ``result`` keeps the time limit from when the write was queued."""
        return self._future

    def result(self) -> WriteResult:
        """Returns: the write's outcome once committed.

        Raises:
            StorageUnavailableError: the database could not take it now (nothing kept), or the
                write did not finish within the time limit (it is withdrawn if it has not
                started; if it has, it may still commit, and the retry is recognised).
            RepeatedSeriesError: the batch is refused (nothing kept).
            UnknownLayoutError: a compact batch whose layout is not (or no longer) held here
                (nothing kept): it must come in full.
        """
        left = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
        if not wait([self._future], left).done:
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


@dataclass(frozen=True)
class WriteResult:
    duplicate: bool
    samples: int
    node_pk: int
    refused: dict[str, int] = field(default_factory=dict)
    """Metric -> how many of its new series were refused (the node's series limit)."""
    refused_keys: frozenset[tuple[str, str]] = frozenset()
    """(metric, canonical labels) of each refused series."""
    layout: Layout | None = None
    """The node's layout after this batch: the one a compact batch used, or the one a full
    batch made or kept when layouts were asked for (``layouts.py``)."""


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
        self._series = SeriesWrites(index, round(active_window_seconds * 1000))
        self._naming = NamingCache(lambda: read_node_naming(engine))
        self._node_rows: dict[str, tuple[str, str, Mapping[str, str], float]] = {}
        """node id -> the name, hostname, labels and interval this process last committed to
        its row (writer thread only): a push that repeats them sets only its own columns."""

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def writer(self) -> Writer:
        return self._writer

    @property
    def touch_ms(self) -> int:
        """How old a series' ``last_seen_ms`` may get before a write updates it."""
        return self._series.touch_ms

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
            # Series created after the read have higher ids (ids only grow): keep those. An id
            # taken before the read but committed after it may be forgotten: harmless, the next
            # write of that series finds its row again (insert-or-ignore, then read back).
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
        layouts: bool = False,
    ) -> WriteResult:
        """Store one batch (its samples at the batch's timestamp) as one unit of work.

        Args:
            writers: more stores' parts of the batch (events, job usage), run inside the same
                transaction for a batch not seen before, so a batch is stored whole or not at all.
            max_series_per_node: store no more new series than keep the node's active series
                within this many; the others are refused (``WriteResult.refused``), the rest of
                the batch is stored.
            layouts: make (or keep) the node's layout from a full batch's metric families,
                for its compact batches (``WriteResult.layout``). A ``CompactBatch`` is always
                written through the node's layout.

        Raises:
            StorageUnavailableError, RepeatedSeriesError, UnknownLayoutError: see
                ``PendingWrite``.
        """
        return self.start_write(
            batch, families, received_at, writers, max_series_per_node, layouts=layouts
        ).result()

    def start_write(
        self,
        batch: Batch,
        families: Sequence[Family],
        received_at: float,
        writers: Sequence[BatchWriter] = (),
        max_series_per_node: int | None = None,
        timeout_seconds: float | None = None,
        layouts: bool = False,
    ) -> PendingWrite:
        """Queue ``write_batch``'s work without waiting: batches queued together (a bulk
        request) share one group commit. ``timeout_seconds`` bounds ``PendingWrite.result``.

        Raises:
            StorageUnavailableError: the writer is closed.
        """
        try:
            future = self._writer.enqueue(
                lambda conn: self._write_batch(
                    conn, batch, families, received_at, writers, max_series_per_node, layouts
                )
            )
        except WriterClosedError as exc:
            raise StorageUnavailableError(str(exc)) from exc
        future.add_done_callback(lambda done: self._after_write(done, batch, received_at))
        return PendingWrite(future, timeout_seconds)

    def _after_write(self, future: Future[WriteResult], batch: Batch, received_at: float) -> None:
        """Updates the naming copy once the write committed (so no query sees a push whose
        samples it cannot read yet); a failed write leaves it alone."""
        if not future.cancelled() and future.exception() is None:
            self._naming.note_write(future.result().node_pk, batch, received_at)

    def _write_batch(
        self,
        conn: Connection,
        batch: Batch,
        families: Sequence[Family],
        received_at: float,
        writers: Sequence[BatchWriter],
        max_series_per_node: int | None,
        layouts: bool,
    ) -> WriteResult:
        compact = batch if isinstance(batch, CompactBatch) else None
        layout = None if compact is None else self.held_layout(compact)  # before any write
        node_pk = self._upsert_node(conn, batch, received_at)
        if seen_before(conn, node_pk, batch, received_at):
            return WriteResult(True, 0, node_pk, layout=layout)
        now_ms = round(received_at * 1000)
        # A repeated series refuses the batch: it rolls back only what is above.
        plan = self._series.plan(node_pk, families)
        touched = self._series.touch(conn, plan, now_ms)
        if layout is not None:
            touched += self._series.touch_layout(conn, layout, now_ms)
        if plan.missing and max_series_per_node is not None:
            self._series.limit(conn, node_pk, plan, max_series_per_node, now_ms)
        if batch.inventory is not None:
            upsert_gpus(conn, node_pk, batch.inventory.gpus, received_at)
        for writer in writers:
            writer(conn, node_pk)
        ids, values = self._series.resolve(
            conn, node_pk, plan, now_ms, touched, merge=compact is not None
        )
        if compact is not None and layout is not None:
            ids, values = layout.ids + ids, compact.values + values
        elif layouts:
            layout = self._layout_of(conn, batch, node_pk, plan)
        if ids:
            write_head(conn, node_pk, round(batch.timestamp * 1000), ids, values)
        return WriteResult(
            False,
            len(ids),
            node_pk,
            dict(plan.refused),
            frozenset(plan.refused_keys),
            layout,
        )

    def held_layout(self, batch: CompactBatch) -> Layout:
        """Returns: the layout a compact batch names, as this process holds it.

        Raises:
            UnknownLayoutError: not held (restart, another replica, the node's series changed),
                or its number of samples is not the batch's.
        """
        layout = self.index.book(batch.node.node_id)
        if layout is None or layout.key != batch.layout:
            raise UnknownLayoutError(
                f"layout {batch.layout} of node {batch.node.node_id} is not held by this server "
                "(restarted, another replica, or the node's series changed); send the batch in "
                "full"
            )
        if layout.count != len(batch.values):
            raise UnknownLayoutError(
                f"layout {batch.layout} has {layout.count} samples, the batch {len(batch.values)} "
                "values; send the batch in full"
            )
        return layout

    def _layout_of(
        self, conn: Connection, batch: Batch, node_pk: int, plan: SeriesPlan
    ) -> Layout | None:
        """Returns: the node's layout after a full batch: the one held, if the batch's metric
        families equal it, else one made from them (kept once the batch commits); None if
        some of their series were refused (the agent keeps sending in full)."""
        count = len(batch.metrics)
        if any(metric in plan.refused for metric, *_ in plan.spans[:count]):
            return None
        node_id = batch.node.node_id
        held = self.index.book(node_id)
        if (
            held is not None
            and held.node_pk == node_pk
            and all(plan.hits[:count])
            and held.names == tuple(family.name for family in batch.metrics)
        ):
            return held
        end = plan.spans[count - 1][3] if count else 0
        layout = Layout.of(
            node_pk,
            [(metric, labels) for metric, labels, *_ in plan.spans[:count]],
            cast(list[int], plan.ids[:end]),
        )
        on_commit(conn, lambda: self.index.keep_book(node_id, layout))
        return layout

    def _upsert_node(self, conn: Connection, batch: Batch, received_at: float) -> int:
        """One statement for a known node (UPDATE ... RETURNING): the hot path of ingest, for
        a push without inventory written for the driver (``batch_sql.update_node``); with an
        inventory, the statement built once (``_UPDATE_NODE_INVENTORY``) with bound values."""
        node = batch.node
        inventory = batch.inventory
        if inventory is None:
            row = (node.name, node.hostname, node.labels, batch.interval_seconds)
            pk = update_node(
                conn,
                node.node_id,
                name=node.name,
                hostname=node.hostname,
                labels=node.labels,
                interval_seconds=batch.interval_seconds,
                last_push=received_at,
                batch_ts=batch.timestamp,
                seq=batch.seq,
                unchanged=self._node_rows.get(node.node_id) == row,
            )
            if pk is not None:
                on_commit(conn, lambda: self._node_rows.__setitem__(node.node_id, row))
                return pk
        values: dict[str, Any] = {
            "name": node.name,
            "hostname": node.hostname,
            "labels": dict(node.labels),
            "interval_seconds": batch.interval_seconds,
            "last_push": received_at,
        }
        if inventory is not None:
            self._node_rows.pop(node.node_id, None)  # this statement writes the row anew
            values["host_facts"] = inventory.host.model_dump()
            values["driver_version"] = inventory.driver_version
            values["gpu_status"] = inventory.gpu_status
            bound = {f"b_{key}": value for key, value in values.items()}
            pk = conn.execute(
                _UPDATE_NODE_INVENTORY,
                {"b_node_id": node.node_id, "b_ts": batch.timestamp, "b_seq": batch.seq, **bound},
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

    # -- reads -----------------------------------------------------------------------------

    def nodes(self) -> list[NodeRecord]:
        return read_nodes(self._engine)

    def node_naming(self, max_age_seconds: float = 0.0) -> dict[int, NodeNaming]:
        """Returns: node pk -> name, labels and push timing (``records.read_node_naming``);
        with ``max_age_seconds``, from this process' copy (``naming.py``) unless it is older,
        as a dict the caller must not change."""
        if max_age_seconds <= 0:
            return read_node_naming(self._engine)
        return self._naming.get(max_age_seconds)

    def node(self, key: str) -> NodeRecord | None:
        """Returns: the node whose name or node id is ``key`` (newest push wins on a name)."""
        return read_node(self._engine, key)

    def gpus(self, node_pk: int) -> list[GpuRecord]:
        return read_gpus(self._engine, node_pk)

    def gpus_by_node(self) -> dict[int, list[GpuRecord]]:
        return read_gpus_by_node(self._engine)

    def gpu_counts(self) -> dict[int, int]:
        return read_gpu_counts(self._engine)

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
