"""Storage errors that callers map to answers: what may pass, and what is refused for good.

``StorageUnavailableError`` wraps what may pass (the database locked or unreachable, the writer
closed, stopped or dead, a write past its time limit), so callers can ask the agent to retry
instead of failing; ``as_unavailable`` tells such failures from bugs. A batch refused for good
raises ``RepeatedSeriesError`` (``series_index.py``).
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from server.storage.writer import WriterClosedError, WriterDiedError

# Failures that say "not now" rather than "never": a locked SQLite file, PostgreSQL refusing or
# dropping connections, a pool with no connection to spare, a writer shut down for a restart
# (or stopped, or whose thread died running the write).
_TRANSIENT: tuple[type[Exception], ...] = (
    WriterClosedError,
    WriterDiedError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)


class StorageUnavailableError(RuntimeError):
    """The database cannot take the write now: nothing of it was kept (or, for a write past its
    time limit, it may still commit); a retry may succeed, and a repeat is recognised."""


def as_unavailable(exc: Exception) -> StorageUnavailableError | None:
    """Returns: ``exc`` as a ``StorageUnavailableError`` when it may pass (the database locked,
    unreachable or restarted, the writer closed, stopped or dead), else None (a bug or a
    refusal)."""
    transient = isinstance(exc, _TRANSIENT) or (
        isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    )
    return StorageUnavailableError(_describe(exc)) if transient else None


def _describe(exc: Exception) -> str:
    """Returns: a one-line reason for a storage failure, without SQL text or parameters."""
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0][:200] if lines else 'no detail'}"
