"""Head rows of chosen nodes over a time range, unpacked; and a round's cache of them.

Stage: storage (inside ``Reader``). A head row is one batch of one node: the ids and values of
every series it carried at one timestamp. A read of a few series still fetches their nodes'
whole rows, so a rule round whose selectors each read the same nodes over the same recent
minutes used to fetch and unpack every row once per selector. ``RoundHeads`` keeps, for one
round (one snapshot), each node's rows over the round's window the first time a read asks for
that node, as one table per node (``NodeMatrix``), and serves every later read inside the
window from it by column lookups; a read outside the window is fetched as before. ``fetch`` is
the one query both paths share.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Table, select

from server.storage import head
from server.storage.runs import in_chunks
from server.storage.tables import HeadChunkRow

_head: Table = HeadChunkRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class HeadRow:
    ts_ms: int
    ids: npt.NDArray[np.uint32]  # ascending
    values: npt.NDArray[np.float64]


def fetch(
    conn: Connection, node_pks: Iterable[int], start_ms: int, end_ms: int
) -> dict[int, list[HeadRow]]:
    """Returns: node -> its head rows with ``start_ms <= ts <= end_ms``, in time order (nodes
    without rows are absent). One statement per IN list of nodes, not one per node: most nodes
    have no head rows in a range of closed windows, and a statement costs more than its rows."""
    found: dict[int, list[HeadRow]] = defaultdict(list)
    for chunk in in_chunks(sorted(set(node_pks))):
        statement = (
            select(_head.c.node_pk, _head.c.ts_ms, _head.c.n, _head.c.payload)
            .where(_head.c.node_pk.in_(chunk), _head.c.ts_ms >= start_ms, _head.c.ts_ms <= end_ms)
            .order_by(_head.c.node_pk, _head.c.ts_ms)
        )
        for node_pk, ts_ms, n, payload in conn.execute(statement).all():  # one fetch call
            ids, values = head.unpack(n, payload)  # never empty: see Store
            found[node_pk].append(HeadRow(ts_ms, ids, values))
    return found


@dataclass(frozen=True)
class NodeMatrix:
    """One node's head rows as a table: a row per batch, a column per series it ever carried
    in the window (``ids``, ascending); ``present`` says which cells a batch held."""

    stamps: npt.NDArray[np.int64]
    ids: npt.NDArray[np.uint32]
    values: npt.NDArray[np.float64]
    present: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, rows: list[HeadRow]) -> NodeMatrix:
        stamps = np.array([row.ts_ms for row in rows], dtype=np.int64)
        ids = np.unique(np.concatenate([row.ids for row in rows])) if rows else _NO_IDS
        values = np.zeros((len(rows), len(ids)), dtype=np.float64)
        present = np.zeros((len(rows), len(ids)), dtype=np.bool_)
        for index, row in enumerate(rows):
            columns = np.searchsorted(ids, row.ids)
            values[index, columns] = row.values
            present[index, columns] = True
        return cls(stamps, ids, values, present)


_NO_IDS = np.empty(0, dtype=np.uint32)


class RoundHeads:
    """The head rows of one round's snapshot over ``[start_ms, end_ms]``, fetched per node on
    first use and kept as one ``NodeMatrix`` per node, so a read is a column lookup. Not
    thread-safe: one round, one thread."""

    def __init__(self, start_ms: int, end_ms: int) -> None:
        self.start_ms = start_ms
        self.end_ms = end_ms
        self._nodes: dict[int, NodeMatrix] = {}
        self.fetches = 0  # node sets fetched (for tests and profiles)

    def covers(self, start_ms: int, end_ms: int) -> bool:
        return self.start_ms <= start_ms and end_ms <= self.end_ms

    def samples(
        self,
        conn: Connection,
        by_node: dict[int, list[int]],
        start_ms: int,
        end_ms: int,
    ) -> dict[int, list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]]:
        """Returns: series id -> [(timestamps, values)] of the series of ``by_node`` (node ->
        series ids) with ``start_ms <= ts <= end_ms``, for a range this round ``covers``;
        series without a sample there are absent."""
        missing = [pk for pk in by_node if pk not in self._nodes]
        if missing:
            self.fetches += 1
            fetched = fetch(conn, missing, self.start_ms, self.end_ms)
            for pk in missing:
                self._nodes[pk] = NodeMatrix.of(fetched.get(pk, []))
        found: dict[int, list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]] = {}
        for pk, series_ids in by_node.items():
            node = self._nodes[pk]
            first = int(np.searchsorted(node.stamps, start_ms, side="left"))
            last = int(np.searchsorted(node.stamps, end_ms, side="right"))
            if first >= last or not len(node.ids):
                continue
            wanted = np.array(sorted(series_ids), dtype=np.uint32)
            columns = np.minimum(np.searchsorted(node.ids, wanted), len(node.ids) - 1)
            known = node.ids[columns] == wanted
            stamps = node.stamps[first:last]
            values = node.values[first:last]
            present = node.present[first:last]
            for series_id, column in zip(
                wanted[known].tolist(), columns[known].tolist(), strict=True
            ):
                keep = present[:, column]
                if keep.any():
                    found[series_id] = [(stamps[keep], values[keep, column])]
        return found
