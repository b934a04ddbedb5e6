"""Maintenance leadership: which server replica runs the database-wide maintenance.

Stage: storage (background). Several stateless replicas may share one PostgreSQL (DESIGN 10);
compaction, retention and the other singleton maintenance must run on one of them. The leader is
whichever replica holds a session-level PostgreSQL advisory lock, on a connection of its own:

- ``check()`` runs once per maintenance interval. A follower tries ``pg_try_advisory_lock``; the
  leader confirms that its session still holds the lock. A lost connection is lost leadership.
- The lock belongs to the session, so when the leader stops, is killed or loses its connection,
  PostgreSQL releases it, and a follower's next check takes it. Failover therefore takes at most
  one maintenance interval after PostgreSQL ends the old session: at once for a dead process
  (its socket closes), within the session's TCP keepalive (about 25 s) for a vanished host.

On SQLite the single server process is the leader (``SoleLeader``). ``LockTable`` and
``InMemoryLeader`` are the in-memory twin of the advisory lock, for tests.

Leadership is not a fence: a leader may lose its session in the middle of a pass and finish a
write it began. The compactor makes such duplicate work harmless (``compactor.py``).
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

_log = logging.getLogger(__name__)

LOCK_KEY = int.from_bytes(b"dcmon-mt", "big")
"""The advisory lock's key (a bigint); advisory locks are per database, so one site each."""

_SESSION_OPTIONS = " ".join(
    (
        "-c statement_timeout=5000",  # a check never hangs the maintenance loop
        "-c tcp_keepalives_idle=10",  # PostgreSQL ends a vanished leader's session in ~25 s
        "-c tcp_keepalives_interval=5",
        "-c tcp_keepalives_count=3",
    )
)
_CONNECT_ARGS = {
    "application_name": "dcmon-maintenance-leader",
    "connect_timeout": 5,
    "options": _SESSION_OPTIONS,
    "tcp_user_timeout": 15000,  # and the leader notices a dead link within 15 s
}
_HOLDS_LOCK = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND classid::bigint = :high AND objid::bigint = :low"
    " AND objsubid = 1)"
)
_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)")


class Leadership(Protocol):
    """Whether this server process runs the singleton maintenance."""

    @property
    def shared(self) -> bool:
        """Whether other server processes may use the same database (and create series)."""
        ...

    @property
    def is_leader(self) -> bool:
        """The answer of the last ``check`` (no I/O: for metrics and status)."""
        ...

    def check(self) -> bool:
        """Become or stay the leader if possible; returns whether this process leads now."""
        ...

    def close(self) -> None:
        """Give leadership up (if held) so that another replica can take it at once."""
        ...


class SoleLeader:
    """The only server process (SQLite): always the leader."""

    @property
    def shared(self) -> bool:
        return False

    @property
    def is_leader(self) -> bool:
        return True

    def check(self) -> bool:
        return True

    def close(self) -> None:
        pass


class AdvisoryLockLeader:
    """Leadership held through a PostgreSQL session-level advisory lock on its own connection.

    Thread safety: ``check`` and ``close`` may be called from any thread (one at a time).
    """

    def __init__(self, url: URL, key: int = LOCK_KEY) -> None:
        self._key = key
        self._engine: Engine = create_engine(
            url, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args=_CONNECT_ARGS
        )
        self._conn: Connection | None = None
        self._leader = False
        self._mutex = threading.Lock()

    @property
    def shared(self) -> bool:
        return True

    @property
    def is_leader(self) -> bool:
        return self._leader

    def check(self) -> bool:
        with self._mutex:
            was_leader = self._leader
            try:
                if self._conn is None:
                    self._conn = self._engine.connect()
                if self._leader:
                    self._leader = self._holds_lock(self._conn)
                if not self._leader:
                    self._leader = bool(
                        self._conn.execute(_TRY_LOCK, {"key": self._key}).scalar_one()
                    )
            except SQLAlchemyError as exc:
                self._leader = False
                self._disconnect()
                if was_leader:
                    _log.warning("lost maintenance leadership (lock connection failed): %s", exc)
                else:
                    _log.debug("maintenance leadership not checked: %s", exc)
                return False
            if self._leader and not was_leader:
                _log.info("this server is now the maintenance leader")
            elif was_leader and not self._leader:
                _log.warning("lost maintenance leadership: the lock is no longer held")
            return self._leader

    def close(self) -> None:
        """Ends the lock's session, which releases the lock."""
        with self._mutex:
            if self._leader:
                _log.info("giving up maintenance leadership")
            self._leader = False
            self._disconnect()
            self._engine.dispose()

    def _holds_lock(self, conn: Connection) -> bool:
        high, low = self._key >> 32, self._key & 0xFFFFFFFF
        return bool(conn.execute(_HOLDS_LOCK, {"high": high, "low": low}).scalar_one())

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except SQLAlchemyError as exc:
                _log.debug("closing the lock connection failed: %s", exc)
            self._conn = None


def leadership_for(engine: Engine) -> Leadership:
    """Returns: advisory-lock leadership on PostgreSQL; on SQLite, the single process leads."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLockLeader(engine.url)
    return SoleLeader()


# -- the in-memory twin ----------------------------------------------------------------------


class LockTable:
    """The in-memory twin of one advisory lock: which session, if any, holds it."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._holder: object | None = None

    def try_lock(self, session: object) -> bool:
        with self._mutex:
            if self._holder is None:
                self._holder = session
            return self._holder is session

    def holds(self, session: object) -> bool:
        with self._mutex:
            return self._holder is session

    def end_session(self, session: object) -> None:
        """What PostgreSQL does when a session ends: its locks are released."""
        with self._mutex:
            if self._holder is session:
                self._holder = None


class InMemoryLeader:
    """``AdvisoryLockLeader`` over a ``LockTable`` shared by the replicas of a test."""

    def __init__(self, table: LockTable) -> None:
        self._table = table
        self._session: object | None = None
        self._lost = False
        self._leader = False
        self.checks = 0

    @property
    def shared(self) -> bool:
        return True

    @property
    def is_leader(self) -> bool:
        return self._leader

    def check(self) -> bool:
        self.checks += 1
        if self._lost:  # the check finds the connection dead: leadership is gone
            self._lost = False
            self._session = None
            self._leader = False
            return False
        if self._session is None:
            self._session = object()
        self._leader = self._table.try_lock(self._session)
        return self._leader

    def lose_session(self) -> None:
        """The connection dies (the database ended the session); the next check notices."""
        if self._session is not None:
            self._table.end_session(self._session)
            self._lost = True

    def close(self) -> None:
        if self._session is not None:
            self._table.end_session(self._session)
        self._session = None
        self._leader = False
