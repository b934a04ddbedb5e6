"""The ``meminfo`` collector: ``/proc/meminfo`` as node_exporter's ``node_memory_*`` gauges.

Naming follows node_exporter's meminfo collector: a field with a ``kB`` unit becomes
``node_memory_<Field>_bytes`` (value x 1024), a unitless field (``HugePages_Total``...) becomes
``node_memory_<Field>``, and a parenthesised part turns into an underscore suffix
(``Active(anon)`` -> ``Active_anon``). Swap (``SwapTotal``, ``SwapFree``) is here too.

Only fields listed in the catalog (source ``meminfo``) are emitted, so a new kernel field never
reaches the wire unannounced; an unlisted field is logged once at debug level and skipped.
"""

from __future__ import annotations

import logging

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, read_table
from agent.wire.catalog import Catalog, default_catalog

logger = logging.getLogger(__name__)

KIB_BYTES = 1024


def metric_name(field: str, has_kb_unit: bool) -> str:
    """Returns: node_exporter's metric name for a ``/proc/meminfo`` field."""
    if "(" in field:
        field = field.replace("(", "_").replace(")", "")
    return f"node_memory_{field}_bytes" if has_kb_unit else f"node_memory_{field}"


class MeminfoCollector:
    """Reads ``/proc/meminfo``; bytes for ``kB`` fields, plain counts for the others."""

    name = "meminfo"

    def __init__(self, paths: HostPaths, catalog: Catalog | None = None) -> None:
        self._path = paths.proc / "meminfo"
        listed = (catalog or default_catalog()).from_source(self.name)
        self._listed = frozenset(spec.name for spec in listed)
        # (field, has kB unit) -> metric name, or None for a field the catalog does not list.
        self._names: dict[tuple[str, bool], str | None] = {}

    def collect(self, now: float) -> list[Sample]:
        """Returns: one gauge per listed field present in ``/proc/meminfo``.

        Raises:
            MalformedFileError: a line is not ``Field: value [kB]``, or nothing parsed.
        """
        samples: list[Sample] = []
        for line in read_table(self._path).splitlines():
            field, colon, rest = line.partition(":")
            if not colon:
                if line.strip():
                    raise MalformedFileError(self._path, f"bad line {line[:60]!r}")
                continue  # some old kernels print an empty line
            parts = rest.split()
            has_kb_unit = len(parts) == 2 and parts[1] == "kB"
            if len(parts) != 1 and not has_kb_unit:
                raise MalformedFileError(self._path, f"bad line {line[:60]!r}")
            try:
                value = int(parts[0])
            except ValueError:
                raise MalformedFileError(self._path, f"bad value {line[:60]!r}") from None
            name = self._name(field, has_kb_unit)
            if name is not None:
                samples.append(Sample(name, {}, float(value * KIB_BYTES if has_kb_unit else value)))
        if not samples:
            raise MalformedFileError(self._path, "no known field")
        return samples

    def _name(self, field: str, has_kb_unit: bool) -> str | None:
        """Returns: the listed metric name of a field, or None (logged the first time)."""
        key = (field, has_kb_unit)
        if key not in self._names:
            name = metric_name(field, has_kb_unit)
            self._names[key] = name if name in self._listed else None
            if name not in self._listed:
                logger.debug("meminfo field %r is not in the catalog; skipped", field)
        return self._names[key]
