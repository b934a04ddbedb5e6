"""The collector seam: ``Collector.collect(now) -> samples``.

A collector reads one area of the node (CPU, memory, one GPU backend, ...) and returns samples
named as in the catalog. It raises when it cannot collect at all; the daemon's per-tick
supervisor records that as ``success=False`` for this collector and the others carry on. A
reading that is unsupported or failed is left out, never reported as 0, NaN or a sentinel.
Counters are returned raw (cumulative), never as rates.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple, Protocol


class Sample(NamedTuple):
    """One reading: catalog metric name, its labels, and the value in the catalog's unit."""

    name: str
    labels: dict[str, str]
    value: float


class Collector(Protocol):
    """Anything with a short snake_case ``name`` and a ``collect`` method."""

    @property
    def name(self) -> str: ...

    def collect(self, now: float) -> Iterable[Sample]:
        """Read the node once.

        Args:
            now: the tick's wall-clock Unix time in seconds (one timestamp per tick).

        Returns:
            The samples of this reading.
        """
        ...


class HostPaths(NamedTuple):
    """Where the host's kernel interfaces live; tests point these at recorded trees."""

    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    rootfs: Path = Path("/")
