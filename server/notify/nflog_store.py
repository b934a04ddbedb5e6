"""The notification log in the database, so a restarted or new leader sends nothing twice.

Stage: notify -> storage. One row per (receiver, group key) (``nflog.LogEntry``): written
through the single writer after each successful notification, read before the next one. All
replicas share it on PostgreSQL, which is what keeps a failover from repeating a notification
that was already sent (the new leader reads what the old one logged).
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, Table, delete, insert, select

from server.notify.nflog import LogEntry
from server.notify.tables import NotificationLogRow
from server.storage.writer import Writer

_table: Table = NotificationLogRow.__table__  # type: ignore[assignment]


class SqlNotificationLog:
    def __init__(self, engine: Engine, writer: Writer) -> None:
        self._engine = engine
        self._writer = writer

    def get(self, receiver: str, group_key: str) -> LogEntry | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(_table).where(_table.c.receiver == receiver, _table.c.group_key == group_key)
            ).first()
        if row is None:
            return None
        data = row._mapping
        return LogEntry(
            receiver,
            group_key,
            frozenset(data["firing"]),
            frozenset(data["resolved"]),
            float(data["sent_at"]),
            float(data["expires_at"]),
        )

    def log(self, entry: LogEntry) -> None:
        def job(conn: Connection) -> None:
            conn.execute(
                delete(_table).where(
                    _table.c.receiver == entry.receiver, _table.c.group_key == entry.group_key
                )
            )
            conn.execute(
                insert(_table).values(
                    receiver=entry.receiver,
                    group_key=entry.group_key,
                    firing=sorted(entry.firing),
                    resolved=sorted(entry.resolved),
                    digest=entry.digest,
                    sent_at=entry.sent_at,
                    expires_at=entry.expires_at,
                )
            )

        self._writer.submit(job)

    def gc(self, now: float) -> int:
        return int(
            self._writer.submit(
                lambda conn: conn.execute(delete(_table).where(_table.c.expires_at <= now)).rowcount
            )
        )
