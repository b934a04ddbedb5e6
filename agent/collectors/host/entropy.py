"""The ``entropy`` collector: the kernel random pool, from ``/proc/sys/kernel/random``.

Input: ``entropy_avail`` and ``poolsize`` (bits). Output, as node_exporter's entropy, gauges:
``node_entropy_available_bits`` and ``node_entropy_pool_size_bits``. Since Linux 5.18 the
pool is a 256-bit hash that is full once seeded, so both read 256; on older kernels a low
``entropy_avail`` meant readers of ``/dev/random`` could block. Both files exist on every
Linux, so a missing one is an error, as in node_exporter. The pool size is fixed for the life
of the kernel (read-only since 2.6), so it is read once.
"""

from __future__ import annotations

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import parse_int, read_table


class EntropyCollector:
    """Reads the available entropy every tick and the pool size once."""

    name = "entropy"

    def __init__(self, paths: HostPaths) -> None:
        folder = paths.proc / "sys" / "kernel" / "random"
        self._available = folder / "entropy_avail"
        self._pool_size = folder / "poolsize"
        self._pool_bits: float | None = None

    def collect(self, now: float) -> list[Sample]:
        """Returns: the two gauges, in bits.

        Raises:
            MalformedFileError: a file does not hold one integer.
            OSError: a file cannot be read.
        """
        available = parse_int(self._available, read_table(self._available).strip())
        if self._pool_bits is None:
            self._pool_bits = float(parse_int(self._pool_size, read_table(self._pool_size).strip()))
        return [
            Sample("node_entropy_available_bits", {}, float(available)),
            Sample("node_entropy_pool_size_bits", {}, self._pool_bits),
        ]
