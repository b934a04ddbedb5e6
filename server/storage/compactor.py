"""Compaction: closed windows move from the head into per-series blocks of every tier.

Stage: storage (background). For one node and one closed window, in one unit of work on the
single writer: the raw block of each series (merged with a block already there, for late
samples), its 1-minute buckets, the 1-hour buckets of its hours updated in the series' day
block, and the deletion of exactly the head rows that were read. The CPU work (decode, merge,
encode, rollups) happens before, outside the transaction, so ingest waits only for the short
write. A crash at any point leaves either the head rows or the blocks, never both or neither,
so a restarted server simply compacts what is still in the head.

Only the maintenance leader compacts (``server/storage/leader.py``), but leadership is not a
fence: a leader whose lock session was lost may still be in the middle of a pass when another
replica takes over. So each window's write first deletes exactly the head rows it read, and if
any of them is gone or changed (another compactor got there first, or a batch was merged into
it) the write is rolled back and the window is left for the next pass. A stale compactor
therefore never replaces newer blocks with older ones.

Retention removes, per tier, the blocks whose whole window is older than the tier's horizon
(and head rows older than the raw horizon), a bounded number of rows per unit of work.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, Row, Table, and_, delete, select, tuple_

from server.rollup.buckets import Buckets, combine, merge, rollup
from server.storage import blocks, head
from server.storage.runs import Floats, Int64s, in_chunks, merge_runs
from server.storage.tables import BlockRow, HeadChunkRow
from server.storage.tiers import DAY_MS, HOUR_MS, MINUTE_MS, TierPlan, window_end
from server.storage.writer import Writer

_log = logging.getLogger(__name__)

_head: Table = HeadChunkRow.__table__  # type: ignore[assignment]
_blocks: Table = BlockRow.__table__  # type: ignore[assignment]
RETENTION_CHUNK = 5000


@dataclass
class CompactionStats:
    windows: int = 0
    head_rows: int = 0
    samples: int = 0
    blocks: int = 0
    skipped: int = 0
    """Windows whose head rows changed between read and write: left for the next pass."""


class WindowChangedError(RuntimeError):
    """A window's head rows changed after compaction read them; nothing of it was written."""


@dataclass
class RetentionStats:
    deleted: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Window:
    node_pk: int
    end_ms: int


class Compactor:
    """Moves closed windows out of the head and applies retention."""

    def __init__(
        self,
        engine: Engine,
        writer: Writer,
        plan: TierPlan,
        clock: Callable[[], float],
        on_window: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._plan = plan
        self._clock = clock
        self._on_window = on_window

    def compact(self, limit: int | None = None) -> CompactionStats:
        """Compact every closed window still in the head (at most ``limit`` windows)."""
        stats = CompactionStats()
        closed = self._plan.closed_until(round(self._clock() * 1000))
        windows = self._closed_windows(closed)[:limit]
        if windows:
            _log.info("compacting %d closed windows", len(windows))
        for window in windows:
            try:
                self._compact_window(window, stats)
            except WindowChangedError as exc:
                _log.info("compaction of a window skipped until the next pass: %s", exc)
                stats.skipped += 1
            if self._on_window is not None:
                self._on_window()
        return stats

    def _closed_windows(self, closed_until: int) -> list[_Window]:
        block = self._plan.block_ms
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_head.c.node_pk, _head.c.ts_ms).where(_head.c.ts_ms <= closed_until)
            )
            found = {_Window(row.node_pk, window_end(row.ts_ms, block)) for row in rows}
        return sorted(found, key=lambda w: (w.end_ms, w.node_pk))

    def _compact_window(self, window: _Window, stats: CompactionStats) -> None:
        plan = self._plan
        start = window.end_ms - plan.block_ms
        day_end = window_end(window.end_ms, DAY_MS)
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_head.c.ts_ms, _head.c.n, _head.c.payload).where(
                    _head.c.node_pk == window.node_pk,
                    _head.c.ts_ms > start,
                    _head.c.ts_ms <= window.end_ms,
                )
            ).all()
            if not rows:
                return
            per_series = _transpose(rows)
            ids = sorted(per_series)
            raw_old = _read_blocks(conn, ids, 0, [window.end_ms])
            hour_old = _read_blocks(conn, ids, 2, [day_end])
            minute_neighbours = (
                {} if plan.block_ms % HOUR_MS == 0 else self._hour_minutes(conn, ids, window)
            )
        new_rows: list[dict[str, object]] = []
        for series_id in ids:
            stamps, values = per_series[series_id]
            if series_id in raw_old:
                old_stamps, old_columns = raw_old[series_id]
                stamps, values = merge_runs([(old_stamps, old_columns[0]), (stamps, values)])
            new_rows.append(_row(series_id, 0, window.end_ms, stamps, [values]))
            minutes = rollup(stamps, values, MINUTE_MS)
            new_rows.append(_row(series_id, 1, window.end_ms, minutes.end_ms, minutes.columns()))
            source = minutes
            if series_id in minute_neighbours:
                source = merge(minute_neighbours[series_id], minutes)
            hours = combine(source, HOUR_MS)
            touched = (hours.end_ms > start) & (hours.end_ms <= window_end(window.end_ms, HOUR_MS))
            hours = hours.select(touched)
            if series_id in hour_old:
                ends, columns = hour_old[series_id]
                old = Buckets.from_columns(ends, columns)
                hours = merge(old.select(~np.isin(old.end_ms, hours.end_ms)), hours)
            new_rows.append(_row(series_id, 2, day_end, hours.end_ms, hours.columns()))
        read_rows = [(row.ts_ms, row.n) for row in rows]
        samples = sum(row.n for row in rows)

        def write(conn: Connection) -> None:
            # The fence first: under PostgreSQL a concurrent compactor's delete of the same
            # rows waits for this one's commit and then finds nothing.
            for ts_ms, n in read_rows:
                deleted = conn.execute(
                    delete(_head).where(
                        and_(
                            _head.c.node_pk == window.node_pk,
                            _head.c.ts_ms == ts_ms,
                            _head.c.n == n,
                        )
                    )
                ).rowcount
                if deleted != 1:
                    raise WindowChangedError(
                        f"node {window.node_pk}, window ending {window.end_ms}: the head row at "
                        f"{ts_ms} was compacted or merged since it was read"
                    )
            for chunk in in_chunks(ids):
                conn.execute(
                    delete(_blocks).where(
                        _blocks.c.series_id.in_(chunk),
                        tuple_(_blocks.c.tier, _blocks.c.end_ms).in_(
                            [(0, window.end_ms), (1, window.end_ms), (2, day_end)]
                        ),
                    )
                )
            conn.execute(_blocks.insert(), new_rows)

        self._writer.submit(write)
        stats.windows += 1
        stats.head_rows += len(rows)
        stats.samples += samples
        stats.blocks += len(new_rows)

    def _hour_minutes(
        self, conn: Connection, ids: list[int], window: _Window
    ) -> dict[int, Buckets]:
        """1-minute buckets of the other windows in this window's hours (block < 1 hour)."""
        hour_end = window_end(window.end_ms, HOUR_MS)
        block = self._plan.block_ms
        ends = [
            end
            for end in range(hour_end - HOUR_MS + block, hour_end + 1, block)
            if end != window.end_ms
        ]
        found = _read_blocks(conn, ids, 1, ends)
        return {sid: Buckets.from_columns(ends_, cols) for sid, (ends_, cols) in found.items()}

    # -- retention -------------------------------------------------------------------------

    def apply_retention(self) -> RetentionStats:
        """Delete what has fallen out of each tier; returns the rows deleted per tier."""
        now_ms = round(self._clock() * 1000)
        stats = RetentionStats()
        for tier in self._plan.all:
            horizon = now_ms - tier.retention_ms
            stats.deleted[tier.name] = self._delete_blocks(tier.code, horizon)
        stats.deleted["head"] = self._delete_head(now_ms - self._plan.raw.retention_ms)
        return stats

    def _delete_blocks(self, tier: int, horizon: int) -> int:
        """Blocks whose newest possible sample (their end) is older than ``horizon``."""
        deleted = 0
        while True:
            with self._engine.connect() as conn:
                keys = conn.execute(
                    select(_blocks.c.series_id, _blocks.c.end_ms)
                    .where(_blocks.c.tier == tier, _blocks.c.end_ms < horizon)
                    .limit(RETENTION_CHUNK)
                ).all()
            if not keys:
                return deleted
            pairs = [(row.series_id, row.end_ms) for row in keys]

            def job(conn: Connection, pairs: list[tuple[int, int]] = pairs) -> None:
                conn.execute(
                    delete(_blocks).where(
                        _blocks.c.tier == tier,
                        tuple_(_blocks.c.series_id, _blocks.c.end_ms).in_(pairs),
                    )
                )

            self._writer.submit(job)
            deleted += len(pairs)

    def _delete_head(self, horizon: int) -> int:
        def job(conn: Connection) -> int:
            result = conn.execute(delete(_head).where(_head.c.ts_ms < horizon))
            return result.rowcount or 0

        return self._writer.submit(job)


def _transpose(rows: Sequence[Row[Any, Any, Any]]) -> dict[int, tuple[Int64s, Floats]]:
    """Head rows (one per timestamp) into series id -> (timestamps, values)."""
    id_parts, value_parts, stamp_parts = [], [], []
    for row in rows:
        ids, values = head.unpack(row.n, row.payload)
        id_parts.append(ids)
        value_parts.append(values)
        stamp_parts.append(np.full(len(ids), row.ts_ms, dtype=np.int64))
    all_ids = np.concatenate(id_parts)
    all_values = np.concatenate(value_parts)
    all_stamps = np.concatenate(stamp_parts)
    order = np.lexsort((all_stamps, all_ids))
    all_ids, all_values, all_stamps = all_ids[order], all_values[order], all_stamps[order]
    unique, starts = np.unique(all_ids, return_index=True)
    bounds = [*starts.tolist(), len(all_ids)]
    return {
        int(series_id): (
            all_stamps[bounds[i] : bounds[i + 1]],
            all_values[bounds[i] : bounds[i + 1]],
        )
        for i, series_id in enumerate(unique.tolist())
    }


def _read_blocks(
    conn: Connection, ids: list[int], tier: int, ends: list[int]
) -> dict[int, tuple[Int64s, list[Floats]]]:
    found: dict[int, tuple[Int64s, list[Floats]]] = {}
    parts: dict[int, list[tuple[Int64s, list[Floats]]]] = defaultdict(list)
    if not ends:
        return found
    for chunk in in_chunks(ids):
        rows = conn.execute(
            select(_blocks.c.series_id, _blocks.c.payload)
            .where(
                _blocks.c.series_id.in_(chunk),
                _blocks.c.tier == tier,
                _blocks.c.end_ms.in_(ends),
            )
            .order_by(_blocks.c.series_id, _blocks.c.end_ms)
        )
        for row in rows:
            parts[row.series_id].append(blocks.decode(row.payload))
    for series_id, decoded in parts.items():
        stamps = np.concatenate([d[0] for d in decoded])
        columns = [np.concatenate(col) for col in zip(*(d[1] for d in decoded), strict=True)]
        found[series_id] = (stamps, columns)
    return found


def _row(
    series_id: int, tier: int, end_ms: int, stamps: Int64s, columns: list[Floats]
) -> dict[str, object]:
    return {
        "series_id": series_id,
        "tier": tier,
        "end_ms": end_ms,
        "count": len(stamps),
        "payload": blocks.encode(stamps, columns),
    }
