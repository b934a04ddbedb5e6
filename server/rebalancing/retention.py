"""Retention of hints: ended hints that no round produces any more go, with their refs.

Stage: maintenance (the leader's pass) -> storage. A hint is deleted when it has ended
(dismissed, applied, expired) and both its last sighting and its last change of state are older
than the retention. An open hint is never deleted, and neither is a dismissed hint that rounds
still produce (its ``last_seen`` is fresh): deleting it would bring it back as new. Deleted a
chunk per writer job, so ingest waits for one chunk at most.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, Table, delete, select

from server.rebalancing.model import ENDED_STATES
from server.rebalancing.tables import HintRefRow, HintRow
from server.storage.writer import Writer

_hints: Table = HintRow.__table__  # type: ignore[assignment]
_refs: Table = HintRefRow.__table__  # type: ignore[assignment]
_ENDED = sorted(s.value for s in ENDED_STATES)
RETENTION_CHUNK = 500


class HintRetention:
    """Deletes ended hints older than the retention."""

    def __init__(
        self,
        engine: Engine,
        writer: Writer,
        clock: Callable[[], float],
        retention_seconds: float,
        chunk: int = RETENTION_CHUNK,
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._clock = clock
        self._retention_seconds = retention_seconds
        self._chunk = chunk

    def prune(self) -> int:
        """Delete every hint that may go; returns how many."""
        cutoff = self._clock() - self._retention_seconds
        deletable = (
            _hints.c.state.in_(_ENDED),
            _hints.c.last_seen < cutoff,
            _hints.c.state_changed_at < cutoff,
        )
        deleted = 0
        while True:
            with self._engine.connect() as conn:
                ids = list(
                    conn.execute(
                        select(_hints.c.id)
                        .where(*deletable)
                        .order_by(_hints.c.id)
                        .limit(self._chunk)
                    ).scalars()
                )
            if not ids:
                return deleted

            def job(conn: Connection, ids: list[str] = ids) -> int:
                gone = list(
                    conn.execute(
                        select(_hints.c.id).where(_hints.c.id.in_(ids), *deletable)
                    ).scalars()
                )  # checked again: a round may have produced one since
                conn.execute(delete(_refs).where(_refs.c.hint_id.in_(gone)))
                conn.execute(delete(_hints).where(_hints.c.id.in_(gone)))
                return len(gone)

            done = self._writer.submit(job)
            deleted += done
            if done == 0:
                return deleted
