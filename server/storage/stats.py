"""Storage figures: rows, samples and bytes per tier, and the database's size.

A full scan of the blocks table: meant for operators and benchmarks, not for every scrape.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, Table, func, select

from server.storage.tables import BlockRow, HeadChunkRow
from server.storage.tiers import TierPlan

_head: Table = HeadChunkRow.__table__  # type: ignore[assignment]
_blocks: Table = BlockRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class TierFigures:
    blocks: int
    entries: int
    """Samples (raw) or buckets (rollups)."""
    bytes: int

    @property
    def bytes_per_entry(self) -> float | None:
        return self.bytes / self.entries if self.entries else None


@dataclass(frozen=True)
class StorageFigures:
    head_rows: int
    head_samples: int
    head_bytes: int
    tiers: dict[str, TierFigures]
    database_bytes: int | None


def storage_figures(engine: Engine, plan: TierPlan) -> StorageFigures:
    with engine.connect() as conn:
        head = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(_head.c.n), 0),
                func.coalesce(func.sum(func.length(_head.c.payload)), 0),
            )
        ).one()
        rows = conn.execute(
            select(
                _blocks.c.tier,
                func.count(),
                func.coalesce(func.sum(_blocks.c.count), 0),
                func.coalesce(func.sum(func.length(_blocks.c.payload)), 0),
            ).group_by(_blocks.c.tier)
        ).all()
        if conn.dialect.name == "sqlite":
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar() or 0
            free = conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0
            size = conn.exec_driver_sql("PRAGMA page_size").scalar() or 0
            database: int | None = (int(pages) - int(free)) * int(size)
        elif conn.dialect.name == "postgresql":
            database = int(
                conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar() or 0
            )
        else:
            database = None
    by_code = {int(row[0]): TierFigures(int(row[1]), int(row[2]), int(row[3])) for row in rows}
    tiers = {tier.name: by_code.get(tier.code, TierFigures(0, 0, 0)) for tier in plan.all}
    return StorageFigures(int(head[0]), int(head[1]), int(head[2]), tiers, database)
