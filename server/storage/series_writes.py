"""The series side of a batch write: each sample's series id, new series within the node's
limit, and the last write of each series.

Stage: ingest -> storage, inside the batch's unit of work on the writer thread (``store.py``):

- ``plan`` looks every sample's series up in the index, without the database;
- ``touch`` writes ``last_seen_ms`` of the known series last written more than ``touch_ms``
  (a quarter of the active window) ago, in one UPDATE per chunk: for a steady node, once per
  ``touch_ms``, never per sample. A series whose row another server process deleted meanwhile
  (``lifecycle.py``) is forgotten and created again;
- ``limit`` keeps the node within its limit of active series (written within the active
  window): the new series that do not fit are refused, the rest of the batch is stored;
- ``resolve`` creates the new series (one INSERT ... ON CONFLICT DO NOTHING RETURNING for the
  batch; the series it did not insert, made by another server process sharing one PostgreSQL
  at the same moment, read back) and, after the commit, tells the index.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Connection, Table, select, update

from server.storage.errors import StorageUnavailableError
from server.storage.inserts import insert_series
from server.storage.layouts import Layout, UnknownLayoutError
from server.storage.runs import IN_CHUNK, in_chunks
from server.storage.series_index import IndexedSeries, Labels, SeriesIndex, family_ids
from server.storage.tables import SeriesRow
from server.storage.writer import on_commit

_log = logging.getLogger(__name__)
_series: Table = SeriesRow.__table__  # type: ignore[assignment]

Family = tuple[str, Sequence[tuple[Mapping[str, str], float]]]
"""One metric family of a batch: its name and (labels, value) samples."""


REFUSED = -1
"""The series id of a sample whose new series was refused (never a real id)."""


@dataclass
class SeriesPlan:
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
    hits: list[bool] = field(default_factory=list)
    """Per family: whether its label list equals the node's last batch's (the fast path)."""


class SeriesWrites:
    """Series lookups, limits and creation for batch writes (used on the writer thread only)."""

    def __init__(self, index: SeriesIndex, active_window_ms: int) -> None:
        self.index = index
        self.active_window_ms = active_window_ms
        self.touch_ms = active_window_ms // 4
        # Series created by earlier jobs of the writer's current transaction, per node: not yet
        # in the index (it follows commits), but they count towards the node's limit. Reset
        # when a job runs on another transaction's connection.
        self._pending_conn: Connection | None = None
        self._pending_series: dict[int, set[tuple[str, str]]] = {}

    def plan(self, node_pk: int, families: Sequence[Family]) -> SeriesPlan:
        """Looks every sample's series up in the index (no database access).

        Raises:
            RepeatedSeriesError: a family repeats a label set.
        """
        ids: list[int | None] = []
        values: list[float] = []
        missing: dict[tuple[str, str], list[int]] = {}
        spans: list[tuple[str, list[Labels], int, int]] = []
        hits: list[bool] = []
        for metric, samples in families:
            labels = [item[0] for item in samples]
            known, keys = family_ids(self.index, node_pk, metric, labels)
            hits.append(not keys)
            offset = len(ids)
            for position, series_id in enumerate(known):
                if series_id is None:
                    missing.setdefault((metric, keys[position]), []).append(offset + position)
            ids.extend(known)
            values.extend(item[1] for item in samples)
            spans.append((metric, labels, offset, len(ids)))
        return SeriesPlan(ids, values, missing, spans, hits=hits)

    def touch(self, conn: Connection, plan: SeriesPlan, now_ms: int) -> list[int]:
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
        found = self._touch_rows(conn, stale, now_ms)
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

    def touch_layout(self, conn: Connection, layout: Layout, now_ms: int) -> list[int]:
        """``touch`` for a compact batch's series (its layout's ids); returns the ids touched.

        Raises:
            UnknownLayoutError: a series of the layout was deleted by another server process
                (it is forgotten, and so is the layout): the batch must come in full.
        """
        stale = self.index.stale(layout.ids, now_ms - self.touch_ms)
        if not stale:
            return []
        found = self._touch_rows(conn, stale, now_ms)
        if len(found) < len(set(stale)):
            self.index.forget(set(stale) - found)
            raise UnknownLayoutError(
                f"series of layout {layout.key} were deleted by another server process"
            )
        return sorted(found)

    @staticmethod
    def _touch_rows(conn: Connection, ids: list[int], now_ms: int) -> set[int]:
        """Write ``last_seen_ms`` of these series; returns the ids whose rows exist."""
        found: set[int] = set()
        for chunk in in_chunks(sorted(set(ids))):
            rows = conn.execute(
                update(_series)
                .where(_series.c.id.in_(chunk))
                .values(last_seen_ms=now_ms)
                .returning(_series.c.id)
            )
            found.update(row.id for row in rows)
        return found

    def limit(
        self, conn: Connection, node_pk: int, plan: SeriesPlan, limit: int, now_ms: int
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

    def resolve(
        self,
        conn: Connection,
        node_pk: int,
        plan: SeriesPlan,
        now_ms: int,
        touched: list[int],
        merge: bool = False,
    ) -> tuple[list[int], list[float]]:
        """Returns: the series id and value of every sample not refused, creating the series
        the plan lacks; after the commit, the index learns the new series and the touches.
        ``merge``: the plan holds only some of the node's families (a compact batch's own),
        so the others' remembered label lists stay."""
        ids = plan.ids
        created: list[IndexedSeries] = []
        if plan.missing:
            created = self._create(conn, node_pk, sorted(plan.missing), now_ms)
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
            self.index.remember_layout(node_pk, layout, merge)

        on_commit(conn, publish)
        return resolved, values

    def _create(
        self, conn: Connection, node_pk: int, keys: list[tuple[str, str]], now_ms: int
    ) -> list[IndexedSeries]:
        """Insert the series unless they exist, in one multi-row INSERT that returns the ids of
        the rows it made; only series it did not make (another server process created them at
        this moment) are read back, a SELECT per metric.

        Raises:
            StorageUnavailableError: a series is not visible after its insert (another
                process deleted it, or this transaction reads an older snapshot); retry.
        """
        created = [
            IndexedSeries(series_id, node_pk, metric, labels)
            for series_id, metric, labels in insert_series(conn, node_pk, keys, now_ms)
        ]
        if len(created) < len(keys):
            made = {(item.metric, item.labels_json) for item in created}
            created += self._existing(conn, node_pk, [key for key in keys if key not in made])
        if len(created) != len(keys):
            raise StorageUnavailableError(
                f"{len(keys) - len(created)} new series were not visible after their insert "
                "(deleted by another server process meanwhile?); retry"
            )
        return created

    @staticmethod
    def _existing(
        conn: Connection, node_pk: int, keys: list[tuple[str, str]]
    ) -> list[IndexedSeries]:
        """Returns: the rows of these series that exist (created by another server process)."""
        found: list[IndexedSeries] = []
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
                found.extend(IndexedSeries(row.id, node_pk, metric, row.labels) for row in rows)
        return found
