"""History reads: raw samples and rollup buckets of chosen series, from the head and blocks.

Stage: storage -> history. Raw samples come from the raw blocks of closed windows plus the head
rows of open ones (and late rows not yet compacted); the two never hold the same timestamp of a
series twice, but if they did the block's sample wins, as on ingest. Rollup buckets come from
the tier's blocks, except where the head still holds samples: those buckets are recomputed from
raw samples, so a query sees data at once, not after compaction. Every tier is clipped to its
retention horizon, so what has fallen out of a tier is never partly visible.

Each read runs in one snapshot (``snapshot``): compaction, perhaps on another server replica,
deletes a window's head rows and inserts its blocks in one commit, and a read whose statements
saw different commits would miss that window or count it twice. PostgreSQL's default READ
COMMITTED gives each statement its own snapshot, so reads there use REPEATABLE READ (read only);
SQLite's transaction is a snapshot from its first read already. A rule round reads through
``in_round``: all its reads in one snapshot, each node's head rows fetched once
(``head_rows.RoundHeads``).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, Table, select

from server.rollup.buckets import Buckets, merge, rollup
from server.storage import blocks, head
from server.storage import head_rows as head_rows_module
from server.storage.decoded import DecodedBlocks
from server.storage.head_rows import RoundHeads
from server.storage.runs import EMPTY, Floats, Samples, in_chunks, merge_runs
from server.storage.series_index import IndexedSeries
from server.storage.tables import BlockRow, HeadChunkRow
from server.storage.tiers import Tier, TierPlan, window_end

_head: Table = HeadChunkRow.__table__  # type: ignore[assignment]
_blocks: Table = BlockRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class _Round:
    conn: Connection
    heads: RoundHeads


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction whose statements all see the database as of its first one."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn


class Reader:
    """Reads history for series chosen through the series index."""

    def __init__(
        self,
        engine: Engine,
        plan: TierPlan,
        clock: Callable[[], float],
        decoded: DecodedBlocks | None = None,
    ) -> None:
        """Args:
        decoded: where raw blocks are decoded (a bounded cache); default: a fresh one.
        """
        self._engine = engine
        self._plan = plan
        self._clock = clock
        self._decoded = decoded if decoded is not None else DecodedBlocks()
        self._round: _Round | None = None

    def in_round(self, conn: Connection, heads: RoundHeads) -> Reader:
        """Returns: a reader whose reads all run on ``conn`` (one snapshot, held by the caller
        for a rule round) and take the head rows inside ``heads``' window from it, so the
        round's selectors fetch and unpack each node's rows once instead of once each."""
        reader = Reader(self._engine, self._plan, self._clock, self._decoded)
        reader._round = _Round(conn, heads)
        return reader

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        if self._round is not None:
            yield self._round.conn
            return
        with snapshot(self._engine) as conn:
            yield conn

    @property
    def plan(self) -> TierPlan:
        """The tiers this reader reads, with their bucket widths and retentions."""
        return self._plan

    def horizon_ms(self, tier: Tier) -> int:
        """Returns: the oldest timestamp still kept by ``tier``."""
        return round(self._clock() * 1000) - tier.retention_ms

    def raw(
        self, series: Sequence[IndexedSeries], start_ms: int, end_ms: int
    ) -> dict[int, Samples]:
        """Returns: series id -> (timestamps, values) with start_ms <= ts <= end_ms, in order."""
        with self._snapshot() as conn:
            return self._raw(conn, series, start_ms, end_ms)

    def _raw(
        self, conn: Connection, series: Sequence[IndexedSeries], start_ms: int, end_ms: int
    ) -> dict[int, Samples]:
        start_ms = max(start_ms, self.horizon_ms(self._plan.raw))
        if not series or end_ms < start_ms:
            return {item.id: EMPTY for item in series}
        from_blocks = self._raw_blocks(conn, [item.id for item in series], start_ms, end_ms)
        from_head = self._head_samples(conn, series, start_ms, end_ms)
        result = {}
        for item in series:
            parts = from_blocks.get(item.id, []) + from_head.get(item.id, [])
            result[item.id] = _joined(parts)
        return result

    def buckets(
        self, series: Sequence[IndexedSeries], tier: Tier, start_ms: int, end_ms: int
    ) -> dict[int, Buckets]:
        """Returns: series id -> the tier's buckets whose end is in (start_ms, end_ms]."""
        width = tier.bucket_ms
        assert width is not None, "a rollup tier"
        start_ms = max(start_ms, self.horizon_ms(tier) - width)
        result = {item.id: Buckets.empty() for item in series}
        if not series or end_ms <= start_ms:
            return result
        with self._snapshot() as conn:
            stored = self._rollup_blocks(conn, tier, [item.id for item in series], start_ms, end_ms)
            dirty = self._dirty_ends(
                conn, {item.node_pk for item in series}, width, start_ms, end_ms
            )
            for item in series:
                result[item.id] = stored.get(item.id, Buckets.empty())
            if dirty:
                self._recompute(conn, series, width, dirty, result)
        # A bucket is kept while its end is at or after the horizon, as its block is.
        horizon = self.horizon_ms(tier)
        return {sid: b.slice(max(start_ms, horizon - 1), end_ms) for sid, b in result.items()}

    def samples_at(self, node_pk: int, series_ids: Sequence[int], ts_ms: int) -> dict[int, float]:
        """Returns: series id -> value of everything the node (whose series are ``series_ids``)
        stored at one timestamp: its head row, or its raw blocks once compacted."""
        with snapshot(self._engine) as conn:
            row = conn.execute(
                select(_head.c.n, _head.c.payload).where(
                    _head.c.node_pk == node_pk, _head.c.ts_ms == ts_ms
                )
            ).first()
            if row is not None:
                ids, values = head.unpack(row.n, row.payload)
                return dict(zip(ids.tolist(), values.tolist(), strict=True))
            end = window_end(ts_ms, self._plan.block_ms)
            found: dict[int, float] = {}
            for chunk in in_chunks(sorted(series_ids)):
                rows = conn.execute(
                    select(_blocks.c.series_id, _blocks.c.payload).where(
                        _blocks.c.series_id.in_(chunk),
                        _blocks.c.tier == 0,
                        _blocks.c.end_ms == end,
                    )
                )
                for block in rows:
                    stamps, columns = blocks.decode(block.payload)
                    position = int(np.searchsorted(stamps, ts_ms))
                    if position < len(stamps) and stamps[position] == ts_ms:
                        found[block.series_id] = float(columns[0][position])
            return found

    # -- parts -----------------------------------------------------------------------------

    def _raw_blocks(
        self, conn: Connection, ids: list[int], start_ms: int, end_ms: int
    ) -> dict[int, list[Samples]]:
        found: dict[int, list[Samples]] = defaultdict(list)
        window = self._plan.block_ms
        for chunk in in_chunks(ids):
            rows = conn.execute(
                select(_blocks.c.series_id, _blocks.c.payload)
                .where(
                    _blocks.c.series_id.in_(chunk),
                    _blocks.c.tier == 0,
                    _blocks.c.end_ms >= start_ms,
                    _blocks.c.end_ms < end_ms + window,
                )
                .order_by(_blocks.c.series_id, _blocks.c.end_ms)
            )
            for row in rows:
                stamps, columns = self._decoded.decode(row.payload)
                if start_ms <= stamps[0] and stamps[-1] <= end_ms:  # read-only, shared
                    found[row.series_id].append((stamps, columns[0]))
                    continue
                first = int(np.searchsorted(stamps, start_ms, side="left"))
                last = int(np.searchsorted(stamps, end_ms, side="right"))
                found[row.series_id].append((stamps[first:last], columns[0][first:last]))
        return found

    def _head_samples(
        self, conn: Connection, series: Sequence[IndexedSeries], start_ms: int, end_ms: int
    ) -> dict[int, list[Samples]]:
        by_node: dict[int, list[int]] = defaultdict(list)
        for item in series:
            by_node[item.node_pk].append(item.id)
        round_heads = self._round.heads if self._round is not None else None
        if round_heads is not None and round_heads.covers(start_ms, end_ms):
            return round_heads.samples(conn, by_node, start_ms, end_ms)
        head_rows = head_rows_module.fetch(conn, by_node, start_ms, end_ms)
        found: dict[int, list[Samples]] = {}
        for node_pk, rows in head_rows.items():
            wanted = np.array(sorted(by_node[node_pk]), dtype=np.uint32)
            stamps: list[int] = []
            rows_found: list[Floats] = []
            masks: list[npt.NDArray[np.bool_]] = []
            for row in rows:
                position = np.minimum(np.searchsorted(row.ids, wanted), len(row.ids) - 1)
                stamps.append(row.ts_ms)
                rows_found.append(row.values[position])
                masks.append(row.ids[position] == wanted)
            if not stamps:
                continue
            stamp_array = np.array(stamps, dtype=np.int64)
            value_matrix = np.vstack(rows_found)
            mask_matrix = np.vstack(masks)
            for column, series_id in enumerate(wanted.tolist()):
                keep = mask_matrix[:, column]
                found[series_id] = [(stamp_array[keep], value_matrix[keep, column].copy())]
        return found

    def _rollup_blocks(
        self, conn: Connection, tier: Tier, ids: list[int], start_ms: int, end_ms: int
    ) -> dict[int, Buckets]:
        parts: dict[int, list[Buckets]] = defaultdict(list)
        for chunk in in_chunks(ids):
            rows = conn.execute(
                select(_blocks.c.series_id, _blocks.c.payload)
                .where(
                    _blocks.c.series_id.in_(chunk),
                    _blocks.c.tier == tier.code,
                    _blocks.c.end_ms > start_ms,
                    _blocks.c.end_ms < end_ms + tier.window_ms,
                )
                .order_by(_blocks.c.series_id, _blocks.c.end_ms)
            )
            for row in rows:
                ends, columns = blocks.decode(row.payload)
                parts[row.series_id].append(Buckets.from_columns(ends, columns))
        return {series_id: merge(*found) for series_id, found in parts.items()}

    def _dirty_ends(
        self, conn: Connection, nodes: Iterable[int], width: int, start_ms: int, end_ms: int
    ) -> dict[int, set[int]]:
        """Returns: node pk -> ends of the buckets in which the head holds samples."""
        dirty: dict[int, set[int]] = defaultdict(set)
        for chunk in in_chunks(list(nodes)):
            rows = conn.execute(
                select(_head.c.node_pk, _head.c.ts_ms).where(
                    _head.c.node_pk.in_(chunk),
                    _head.c.ts_ms > start_ms - width,
                    _head.c.ts_ms <= end_ms,
                )
            )
            for row in rows:
                dirty[row.node_pk].add(window_end(row.ts_ms, width))
        return dirty

    def _recompute(
        self,
        conn: Connection,
        series: Sequence[IndexedSeries],
        width: int,
        dirty: dict[int, set[int]],
        result: dict[int, Buckets],
    ) -> None:
        """Replace the buckets in which the head has samples by buckets made from raw data."""
        for node_pk, ends in dirty.items():
            node_series = [item for item in series if item.node_pk == node_pk]
            first, last = min(ends), max(ends)
            raw = self._raw(conn, node_series, first - width + 1, last)
            end_array = np.array(sorted(ends), dtype=np.int64)
            for item in node_series:
                stamps, values = raw[item.id]
                fresh = rollup(stamps, values, width)
                fresh = fresh.select(np.isin(fresh.end_ms, end_array))
                stored = result[item.id]
                result[item.id] = merge(stored.select(~np.isin(stored.end_ms, end_array)), fresh)


def _joined(parts: list[Samples]) -> Samples:
    """``merge_runs(parts)``, without its sort where the runs (blocks in window order, then
    head rows) already follow each other in time, as they do unless late samples overlap."""
    runs = [part for part in parts if len(part[0])]
    if len(runs) < 2:
        return runs[0] if runs else EMPTY
    if all(before[0][-1] < after[0][0] for before, after in itertools.pairwise(runs)):
        return np.concatenate([run[0] for run in runs]), np.concatenate([run[1] for run in runs])
    return merge_runs(runs)
