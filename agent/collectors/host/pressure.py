"""The ``pressure`` collector: pressure stall information (PSI) from ``/proc/pressure``.

The kernel's cumulative ``total=`` (microseconds) of each line becomes a seconds counter, named
as node_exporter's: cpu ``some`` -> ``node_pressure_cpu_waiting_seconds_total``; memory and io
``some`` -> ``..._waiting_seconds_total`` and ``full`` -> ``..._stalled_seconds_total``; irq
``full`` -> ``node_pressure_irq_stalled_seconds_total`` (Linux >= 6.1). ``rate()`` of one is the
fraction of time tasks were stalled on that resource.

PSI is optional: a kernel without it (< 4.20, no CONFIG_PSI) has no ``/proc/pressure``, one
booted with ``psi=0`` answers EOPNOTSUPP, one without IRQ time accounting has no ``irq`` file.
Each of these yields nothing for the resource, not an error.
"""

from __future__ import annotations

import errno

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, parse_int, read_optional

MICROSECONDS_PER_SECOND = 1_000_000

# resource -> ((line kind, metric), ...)
_RESOURCES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("cpu", (("some", "node_pressure_cpu_waiting_seconds_total"),)),
    (
        "memory",
        (
            ("some", "node_pressure_memory_waiting_seconds_total"),
            ("full", "node_pressure_memory_stalled_seconds_total"),
        ),
    ),
    (
        "io",
        (
            ("some", "node_pressure_io_waiting_seconds_total"),
            ("full", "node_pressure_io_stalled_seconds_total"),
        ),
    ),
    ("irq", (("full", "node_pressure_irq_stalled_seconds_total"),)),
)


def stall_totals(path: str, text: str) -> dict[str, int]:
    """Returns: ``{"some": µs, "full": µs}`` for the lines present in a PSI file.

    Raises:
        MalformedFileError: a line has no ``total=`` or a non-integer total.
    """
    totals: dict[str, int] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if not kind:
            continue
        _, found, total = rest.rpartition("total=")
        if not found:
            raise MalformedFileError(path, f"no total in {line[:80]!r}")
        totals[kind] = parse_int(path, total.strip())
    return totals


class PressureCollector:
    """Reads the four PSI files; absent ones contribute nothing."""

    name = "pressure"

    def __init__(self, paths: HostPaths) -> None:
        self._folder = paths.proc / "pressure"

    def collect(self, now: float) -> list[Sample]:
        """Returns: the stall counters (seconds) of each resource the kernel reports.

        Raises:
            MalformedFileError: a PSI file does not parse.
        """
        samples: list[Sample] = []
        for resource, lines in _RESOURCES:
            path = self._folder / resource
            try:
                text = read_optional(path)
            except OSError as exc:
                if exc.errno == errno.EOPNOTSUPP:
                    continue  # PSI disabled at boot (psi=0), or IRQ time accounting off
                raise
            if text is None:
                continue
            totals = stall_totals(str(path), text)
            for kind, metric in lines:
                if kind in totals:
                    samples.append(Sample(metric, {}, totals[kind] / MICROSECONDS_PER_SECOND))
        return samples
