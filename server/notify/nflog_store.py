"""The notification log and its send claims in the database, shared by every replica.

Stage: notify -> storage. One log row per (receiver, group key) (``nflog.LogEntry``) and, while
a process sends that group's notification, one claim row with the same key
(``tables.NotificationClaimRow``). Every write goes through the single writer; each method is
one transaction. All replicas share both tables on PostgreSQL, which is what keeps a failover
from repeating a notification that was sent (the new leader reads what the old one logged),
and two processes that flush the same group at once from both sending it (the claim's primary
key admits one; the claim is won before the log is read, in the same transaction, so under
READ COMMITTED the winner sees everything the previous holder committed with its claim's
release). Claim times are Unix seconds of the claiming host: replicas' clocks must agree to
well within ``pipeline.CLAIM_MARGIN_S``.
"""

from __future__ import annotations

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    delete,
    insert,
    select,
    update,
)

from server.notify.nflog import CLAIM_RETENTION_S, Claim, LogEntry
from server.notify.tables import NotificationClaimRow, NotificationLogRow
from server.storage.inserts import insert_new
from server.storage.writer import Writer

_table: Table = NotificationLogRow.__table__  # type: ignore[assignment]
_claims: Table = NotificationClaimRow.__table__  # type: ignore[assignment]


def _read(conn: Connection, receiver: str, group_key: str) -> LogEntry | None:
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


def _mine(receiver: str, group_key: str, owner: str) -> ColumnElement[bool]:
    return and_(
        _claims.c.receiver == receiver,
        _claims.c.group_key == group_key,
        _claims.c.owner == owner,
    )


class SqlNotificationLog:
    def __init__(self, engine: Engine, writer: Writer) -> None:
        self._engine = engine
        self._writer = writer

    def get(self, receiver: str, group_key: str) -> LogEntry | None:
        with self._engine.connect() as conn:
            return _read(conn, receiver, group_key)

    def log(self, entry: LogEntry, owner: str = "") -> None:
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
            if owner:
                conn.execute(delete(_claims).where(_mine(entry.receiver, entry.group_key, owner)))

        self._writer.submit(job)

    def claim(
        self, receiver: str, group_key: str, owner: str, digest: str, until: float, now: float
    ) -> Claim:
        values = {
            "receiver": receiver,
            "group_key": group_key,
            "owner": owner,
            "digest": digest,
            "claimed_at": now,
            "until": until,
        }
        key = (_claims.c.receiver == receiver, _claims.c.group_key == group_key)

        def job(conn: Connection) -> Claim:
            taken = ""
            if not insert_new(conn, _claims, values):
                previous = conn.execute(select(_claims.c.owner).where(*key)).scalar()
                # A claim of our own, or one past its time: the row is re-checked under its
                # lock, so of two processes taking over a stale claim only one matches.
                won = conn.execute(
                    update(_claims)
                    .where(*key, (_claims.c.owner == owner) | (_claims.c.until < now))
                    .values(values)
                    .returning(_claims.c.owner)
                ).first()
                if won is None:
                    return Claim(False)
                taken = "" if previous in (None, owner) else str(previous)
            return Claim(True, _read(conn, receiver, group_key), taken)

        result: Claim = self._writer.submit(job)
        return result

    def renew(self, receiver: str, group_key: str, owner: str, until: float) -> bool:
        def job(conn: Connection) -> bool:
            row = conn.execute(
                update(_claims)
                .where(_mine(receiver, group_key, owner))
                .values(until=until)
                .returning(_claims.c.owner)
            ).first()
            return row is not None

        renewed: bool = self._writer.submit(job)
        return renewed

    def release(self, receiver: str, group_key: str, owner: str) -> None:
        self._writer.submit(
            lambda conn: conn.execute(delete(_claims).where(_mine(receiver, group_key, owner)))
        )

    def gc(self, now: float) -> int:
        def job(conn: Connection) -> int:
            conn.execute(delete(_claims).where(_claims.c.until < now - CLAIM_RETENTION_S))
            return int(conn.execute(delete(_table).where(_table.c.expires_at <= now)).rowcount)

        gone: int = self._writer.submit(job)
        return gone
