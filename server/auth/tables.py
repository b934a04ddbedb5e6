"""The web session tables (migration 0011): the signing key the replicas share, and the
sessions that were ended by logging out before they expired.

Declared on the storage ``Base`` so one metadata describes the whole schema; times are Unix
seconds. ``session_keys`` holds one row, made by the first server that needs it: every replica
on the database signs and checks session cookies with it, and it survives restarts. A row of
``session_ends`` outlives its session's cookie only until the cookie's own expiry, after which
the cookie is refused anyway and the row is deleted.
"""

from __future__ import annotations

from sqlalchemy import Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.tables import Base


class SessionKeyRow(Base):
    """A secret key for signing session cookies (HMAC-SHA256), base64url, 256 bits."""

    __tablename__ = "session_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Float)


class SessionEndRow(Base):
    """A session ended by logout: its cookie is refused until ``expires_at``, its own expiry."""

    __tablename__ = "session_ends"
    __table_args__ = (Index("ix_session_ends_expires_at", "expires_at"),)

    session_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_id: Mapped[str] = mapped_column(String(64), doc="the credential it was made from")
    ended_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
