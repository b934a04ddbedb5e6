"""The rows of a batch write besides its node row and its series: the idempotency record, the
GPU inventory and the head row. Each runs inside the batch's unit of work on the writer
(``store.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import Connection, Table, select, update

from agent.wire.schema import Batch, GpuFacts
from server.storage import head
from server.storage.batch_sql import insert_batch_record, insert_head
from server.storage.tables import GpuRow, HeadChunkRow, IngestedBatchRow

_log = logging.getLogger(__name__)
_gpus: Table = GpuRow.__table__  # type: ignore[assignment]
_head: Table = HeadChunkRow.__table__  # type: ignore[assignment]
_batches: Table = IngestedBatchRow.__table__  # type: ignore[assignment]


def write_head(
    conn: Connection, node_pk: int, ts_ms: int, ids: list[int], values: list[float]
) -> None:
    n, payload = head.pack(ids, values)
    if insert_head(conn, node_pk, ts_ms, n, payload):
        return
    # Another batch of this node has this timestamp: keep its samples, add only new series.
    row = conn.execute(
        select(_head.c.n, _head.c.payload).where(_head.c.node_pk == node_pk, _head.c.ts_ms == ts_ms)
    ).one()
    merged_n, merged = head.merge((row.n, row.payload), (n, payload))
    conn.execute(
        update(_head)
        .where(_head.c.node_pk == node_pk, _head.c.ts_ms == ts_ms)
        .values(n=merged_n, payload=merged)
    )


def seen_before(conn: Connection, node_pk: int, batch: Batch, received_at: float) -> bool:
    """Record the batch; True if this exact batch (seq and timestamp) was stored before."""
    if insert_batch_record(conn, node_pk, batch.seq, batch.timestamp, received_at):
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


def upsert_gpus(conn: Connection, node_pk: int, gpus: Iterable[GpuFacts], seen: float) -> None:
    existing = {
        row.uuid: row.id
        for row in conn.execute(select(_gpus.c.id, _gpus.c.uuid).where(_gpus.c.node_pk == node_pk))
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
