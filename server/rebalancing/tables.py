"""The hint tables (migration 0010): one row per hint, and the nodes and pods each names.

Declared on the storage ``Base`` so one metadata describes the whole schema; times are Unix
seconds on the server's clock. ``hints`` is keyed by the engine's content id (16 hex digits of
a hash over kind, subject, remedy and moves), so a hint produced again is the same row and
keeps its state. ``actions`` and ``evidence`` hold the engine's moves and evidence as JSON.

``hint_refs`` lists, per hint, every node (subject, move source, move target) and pod (subject,
moved pod) it names, so the API's ``node`` and ``pod`` filters are indexed lookups on both
backends instead of searches inside JSON. A hint's content never changes under its id, so its
refs are written once, with it, and go with it (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.tables import Base


class HintRow(Base):
    __tablename__ = "hints"
    __table_args__ = (
        Index("ix_hints_state_kind", "state", "kind"),
        Index("ix_hints_last_seen", "last_seen"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    node: Mapped[str | None] = mapped_column(String(253), doc="the subject's node")
    gpu: Mapped[int | None] = mapped_column(Integer, doc="the subject's GPU index")
    pod: Mapped[str | None] = mapped_column(String(253), doc="the subject's pod (job)")
    remedy: Mapped[str] = mapped_column(String(32))
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, doc="the moves")
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    gain_gpus: Mapped[float] = mapped_column(Float, doc="whole GPUs made usable")
    gain_gpu_hours: Mapped[float] = mapped_column(Float)
    gain_watts: Mapped[float] = mapped_column(Float)
    cost_moves: Mapped[int] = mapped_column(Integer)
    cost_restart_s: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float, doc="0..1")
    reason: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float, doc="the last round that produced it")
    missed_rounds: Mapped[int] = mapped_column(Integer, doc="rounds in a row without it")
    state: Mapped[str] = mapped_column(String(16))
    state_changed_at: Mapped[float] = mapped_column(Float)
    state_changed_by: Mapped[str] = mapped_column(String(64), doc="token id, or 'engine'")
    note: Mapped[str] = mapped_column(Text)


class HintRefRow(Base):
    __tablename__ = "hint_refs"
    __table_args__ = (Index("ix_hint_refs_ref_kind_name", "ref_kind", "name"),)

    hint_id: Mapped[str] = mapped_column(
        ForeignKey("hints.id", ondelete="CASCADE"), primary_key=True
    )
    ref_kind: Mapped[str] = mapped_column(String(8), primary_key=True, doc="node or pod")
    name: Mapped[str] = mapped_column(String(253), primary_key=True)
