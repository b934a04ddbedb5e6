"""The notification tables: silences and the notification log (0007), send claims (0008).

Declared on the storage ``Base`` so one metadata describes the whole schema; times are Unix
seconds. Matchers are stored as JSON (``[{"name", "value", "isRegex", "isEqual"}]``, the
Alertmanager API's shape). The notification log has one row per (receiver, group key):
the fingerprints last notified and when, plus the digest of that set. A claim row exists
while one server process is sending a group's notification to a receiver (``nflog.py``):
its primary key is what lets only one of several replicas send it.
"""

from __future__ import annotations

from sqlalchemy import JSON, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.tables import Base


class SilenceRow(Base):
    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_ends_at", "ends_at"),)

    silence_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    matchers: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    starts_at: Mapped[float] = mapped_column(Float)
    ends_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(256))
    comment: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Float)


class NotificationLogRow(Base):
    __tablename__ = "notification_log"
    __table_args__ = (Index("ix_notification_log_expires_at", "expires_at"),)

    receiver: Mapped[str] = mapped_column(String(256), primary_key=True)
    group_key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    firing: Mapped[list[str]] = mapped_column(JSON)
    resolved: Mapped[list[str]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class NotificationClaimRow(Base):
    __tablename__ = "notification_claims"
    __table_args__ = (Index("ix_notification_claims_until", "until"),)

    receiver: Mapped[str] = mapped_column(String(256), primary_key=True)
    group_key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128), doc="the sending process (host:pid:random)")
    digest: Mapped[str] = mapped_column(String(64), doc="the set being sent (nflog.digest)")
    claimed_at: Mapped[float] = mapped_column(Float)
    until: Mapped[float] = mapped_column(Float, doc="after this, another sender may take over")
