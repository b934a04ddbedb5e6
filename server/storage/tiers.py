"""The storage tiers and their windows: what is kept, at what resolution, for how long.

- head: each batch as one row, for windows not yet closed;
- raw (tier 0): each series' samples of one closed window, compressed (``blocks.py``);
- 1m (tier 1): one-minute rollup buckets of the same window;
- 1h (tier 2): one-hour rollup buckets, one block per series and UTC day.

Windows and buckets are left-open, right-closed: the window ending at ``e`` holds the samples
with ``e - width < ts <= e``, with ``e`` a multiple of the width (Unix epoch). A window closes
``grace`` after its end; the compactor then moves it from the head into blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Tier:
    code: int
    name: str
    bucket_ms: int | None
    """Bucket width of a rollup tier; None for raw samples."""
    window_ms: int
    """Span of one block."""
    retention_ms: int


@dataclass(frozen=True)
class TierPlan:
    raw: Tier
    minute: Tier
    hour: Tier
    grace_ms: int

    @property
    def block_ms(self) -> int:
        return self.raw.window_ms

    @property
    def all(self) -> tuple[Tier, Tier, Tier]:
        return (self.raw, self.minute, self.hour)

    def by_code(self, code: int) -> Tier:
        return self.all[code]

    def closed_until(self, now_ms: int) -> int:
        """Returns: the end of the newest closed window at ``now_ms``."""
        return (now_ms - self.grace_ms) // self.block_ms * self.block_ms


def block_ms_of(block_seconds: float) -> int:
    """Returns: the block window in ms. Raises ValueError unless it is a whole number of
    minutes dividing a day (so 1-minute buckets and UTC days are made of whole windows)."""
    block_ms = round(block_seconds * 1000)
    if block_ms <= 0 or block_ms % MINUTE_MS or DAY_MS % block_ms:
        raise ValueError(
            f"storage block of {block_seconds:g}s must be a whole number of minutes that "
            "divides a day (e.g. 600, 1800, 3600, 7200)"
        )
    return block_ms


def make_plan(
    block_seconds: float,
    grace_seconds: float,
    raw_retention_seconds: float,
    minute_retention_seconds: float,
    hour_retention_seconds: float,
) -> TierPlan:
    """Raises: ValueError when the block window does not fit the rollup buckets."""
    block_ms = block_ms_of(block_seconds)
    return TierPlan(
        raw=Tier(0, "raw", None, block_ms, round(raw_retention_seconds * 1000)),
        minute=Tier(1, "1m", MINUTE_MS, block_ms, round(minute_retention_seconds * 1000)),
        hour=Tier(2, "1h", HOUR_MS, DAY_MS, round(hour_retention_seconds * 1000)),
        grace_ms=round(grace_seconds * 1000),
    )


def window_end(ts_ms: int, window_ms: int) -> int:
    """Returns: the end of the window of ``window_ms`` that holds ``ts_ms``."""
    return -(-ts_ms // window_ms) * window_ms
