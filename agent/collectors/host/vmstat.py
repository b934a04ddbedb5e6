"""The ``vmstat`` collector: selected ``/proc/vmstat`` counters as ``node_vmstat_<field>``.

node_exporter's default field set, ``^(oom_kill|pgpg|pswp|pg.*fault).*``: page-in/out (KiB),
swap-in/out (pages), minor and major page faults, OOM kills. Like node_exporter the families
are exposed as ``untyped`` (the catalog marks them monotonic, so the server still treats them as
counters). Of the fields that match, only those listed in the catalog are emitted; a matching
field the catalog does not list is logged once at debug level.
"""

from __future__ import annotations

import logging
import re

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, parse_int, read_table
from agent.wire.catalog import Catalog, default_catalog

logger = logging.getLogger(__name__)

DEFAULT_FIELDS = r"^(oom_kill|pgpg|pswp|pg.*fault).*"
"""node_exporter's default ``--collector.vmstat.fields``."""

_PREFIX = "node_vmstat_"


class VmstatCollector:
    """Reads ``/proc/vmstat`` and keeps node_exporter's default fields."""

    name = "vmstat"

    def __init__(self, paths: HostPaths, catalog: Catalog | None = None) -> None:
        self._path = paths.proc / "vmstat"
        self._fields = re.compile(DEFAULT_FIELDS)
        listed = (catalog or default_catalog()).from_source(self.name)
        # field -> metric name, for the catalog's fields that the default set selects.
        self._metric_for = {
            spec.name[len(_PREFIX) :]: spec.name
            for spec in listed
            if spec.name.startswith(_PREFIX) and self._fields.search(spec.name[len(_PREFIX) :])
        }
        self._passed_over: set[str] = set()

    def collect(self, now: float) -> list[Sample]:
        """Returns: one sample per selected field present.

        Raises:
            MalformedFileError: a line is not ``field value`` or the value is not an integer.
        """
        samples: list[Sample] = []
        for line in read_table(self._path).splitlines():
            field, space, value = line.partition(" ")
            if not space:
                raise MalformedFileError(self._path, f"bad line {line[:60]!r}")
            metric = self._metric_for.get(field)
            if metric is not None:
                samples.append(Sample(metric, {}, float(parse_int(self._path, value))))
            elif field not in self._passed_over:
                # Each field name is judged once; later ticks pay one set lookup per line.
                self._passed_over.add(field)
                if self._fields.search(field):
                    logger.debug("vmstat field %r is not in the catalog; skipped", field)
        return samples
