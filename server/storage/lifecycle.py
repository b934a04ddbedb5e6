"""Series lifecycle: series nobody writes any more are deleted, from the table and the index.

Stage: storage (background, after retention). A series is deleted when all of these hold:

- it was last written (``last_seen_ms``, server time) longer ago than the raw retention;
- no block of any tier holds it (retention has removed its history);
- no head row of its node can hold it: a write at server time ``s`` makes a head row at a batch
  timestamp of at most ``s`` plus the allowed clock lead, and ``last_seen_ms`` is at most
  ``touch_ms`` behind ``s``, so a head row of the node at or before ``last_seen_ms + slack``
  keeps the series.

The index forgets a series in the writer job that deletes its row, before any later job: a
batch written after it creates the series again (with a new id) instead of using the old one,
and if the deletion rolls back, the next write of the series finds its row again
(``Store._create_series`` inserts what is missing and reads the ids back). A batch
written by another server process that still knows the series finds its row gone when it
updates ``last_seen_ms`` and creates it again; the deletion re-checks ``last_seen_ms`` in its
own statement, so a write that wins the race keeps its series.

Short-lived series (one per job and GPU) therefore come and go; the index holds what the
retention of the longest tier keeps, not every series a node ever had.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy import ColumnElement, Connection, Engine, Table, delete, exists, select

from server.storage.series_index import SeriesIndex
from server.storage.tables import BlockRow, HeadChunkRow, SeriesRow
from server.storage.writer import Writer

_series: Table = SeriesRow.__table__  # type: ignore[assignment]
_blocks: Table = BlockRow.__table__  # type: ignore[assignment]
_head: Table = HeadChunkRow.__table__  # type: ignore[assignment]
LIFECYCLE_CHUNK = 2000
"""Series deleted per unit of work on the writer (ingest waits at most for one)."""


@dataclass(frozen=True)
class LifecycleStats:
    deleted: int


class SeriesLifecycle:
    """Deletes series that were not written for longer than the raw retention."""

    def __init__(
        self,
        engine: Engine,
        writer: Writer,
        index: SeriesIndex,
        clock: Callable[[], float],
        raw_retention_ms: int,
        slack_ms: int,
    ) -> None:
        """Args:
        slack_ms: how far after ``last_seen_ms`` a head row of the node may hold the series
            (the store's ``touch_ms`` plus the largest clock lead ingest accepts).
        """
        self._engine = engine
        self._writer = writer
        self._index = index
        self._clock = clock
        self._raw_retention_ms = raw_retention_ms
        self._slack_ms = slack_ms

    def collect(self) -> LifecycleStats:
        """Delete every series that may go, a chunk per unit of work; returns how many.

        Candidates are found on a read connection (a scan that ingest need not wait for); the
        deletion on the writer checks every condition again in its own statement.
        """
        cutoff = round(self._clock() * 1000) - self._raw_retention_ms
        deleted = 0
        after = -1
        while True:
            with self._engine.connect() as conn:
                ids = list(
                    conn.execute(
                        select(_series.c.id)
                        .where(_series.c.id > after, *self._deletable(cutoff))
                        .order_by(_series.c.id)
                        .limit(LIFECYCLE_CHUNK)
                    ).scalars()
                )
            if not ids:
                return LifecycleStats(deleted)
            after = ids[-1]
            deleted += self._writer.submit(partial(self._delete, ids=ids, cutoff=cutoff))

    def _deletable(self, cutoff: int) -> list[ColumnElement[bool]]:
        return [
            _series.c.last_seen_ms < cutoff,
            ~exists().where(_blocks.c.series_id == _series.c.id),
            ~exists().where(
                _head.c.node_pk == _series.c.node_pk,
                _head.c.ts_ms <= _series.c.last_seen_ms + self._slack_ms,
            ),
        ]

    def _delete(self, conn: Connection, ids: list[int], cutoff: int) -> int:
        """Delete those of ``ids`` that may still go; the index forgets them at once (before
        any later job of the same transaction looks a series up)."""
        rows = conn.execute(
            delete(_series)
            .where(_series.c.id.in_(ids), *self._deletable(cutoff))
            .returning(_series.c.id)
        )
        gone = [row.id for row in rows]
        self._index.forget(gone)
        return len(gone)
