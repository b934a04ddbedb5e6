"""The ``sockstat`` collector: socket counts and memory from ``/proc/net/sockstat{,6}``.

Input: lines ``PROTO: key value key value ...`` (``TCP: inuse 2 orphan 0 tw 0 alloc 2 mem 137``)
in ``sockstat`` (IPv4, with the ``sockets: used N`` line) and ``sockstat6`` (IPv6); either may
be absent when its protocol family is off. Output, as node_exporter's sockstat, gauges:
``node_sockstat_<PROTO>_<key>`` for the keys ``inuse``, ``orphan``, ``tw``, ``alloc``, ``mem``
(pages) and ``memory`` (bytes, of ``FRAG``), ``node_sockstat_<PROTO>_mem_bytes`` = ``mem`` x
the page size, and ``node_sockstat_sockets_used``. ``TCP_mem`` against ``net.ipv4.tcp_mem``
is the TCP memory-pressure signal.

Of the names that makes, only those the catalog lists are emitted; another (a protocol a newer
kernel adds) is logged once at debug level. Deviation from node_exporter: a protocol line
without ``inuse`` yields no ``_inuse`` (node_exporter reports 0).
"""

from __future__ import annotations

import logging
import os

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, parse_int, read_optional
from agent.wire.catalog import Catalog, default_catalog

logger = logging.getLogger(__name__)

_KEYS = frozenset({"inuse", "orphan", "tw", "alloc", "mem", "memory"})
"""The keys node_exporter exports; others on a line are ignored as it ignores them."""


class SockstatCollector:
    """Reads both sockstat files; an absent one contributes nothing."""

    name = "sockstat"

    def __init__(
        self,
        paths: HostPaths,
        page_size_bytes: int | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        folder = paths.proc / "net"
        self._files = (folder / "sockstat", folder / "sockstat6")
        self._page_bytes = page_size_bytes or os.sysconf("SC_PAGE_SIZE")
        self._listed = {spec.name for spec in (catalog or default_catalog()).from_source(self.name)}
        # (protocol, key) -> (metric, byte metric for "mem"), or None when nothing is emitted.
        self._names: dict[tuple[str, str], tuple[str | None, str | None]] = {}

    def collect(self, now: float) -> list[Sample]:
        """Returns: the socket gauges of every protocol line (counts, pages, bytes).

        Raises:
            MalformedFileError: a line is not ``PROTO: key value ...`` with integer values.
        """
        samples: list[Sample] = []
        for ipv6, path in enumerate(self._files):
            text = read_optional(path)
            if text is None:
                continue
            for line in text.splitlines():
                fields = line.split()
                if not fields:
                    continue
                if len(fields) < 3 or len(fields) % 2 == 0 or not fields[0].endswith(":"):
                    raise MalformedFileError(path, f"bad line {line[:80]!r}")
                protocol = fields[0][:-1]
                if ipv6 and protocol == "sockets":
                    continue  # the count is IPv4's only, as in node_exporter
                for index in range(1, len(fields), 2):
                    names = self._names.get((protocol, fields[index]))
                    if names is None:
                        names = self._name(protocol, fields[index])
                    metric, byte_metric = names
                    if metric is None and byte_metric is None:
                        continue
                    value = parse_int(path, fields[index + 1])
                    if metric is not None:
                        samples.append(Sample(metric, {}, float(value)))
                    if byte_metric is not None:
                        samples.append(Sample(byte_metric, {}, float(value * self._page_bytes)))
        return samples

    def _name(self, protocol: str, key: str) -> tuple[str | None, str | None]:
        if protocol == "sockets":
            candidates = ["node_sockstat_sockets_used"] if key == "used" else []
        elif key in _KEYS:
            candidates = [f"node_sockstat_{protocol}_{key}"]
            if key == "mem":
                candidates.append(f"node_sockstat_{protocol}_mem_bytes")
        else:
            candidates = []
        for candidate in candidates:
            if candidate not in self._listed:
                logger.debug("sockstat metric %r is not in the catalog; skipped", candidate)
        chosen = [name if name in self._listed else None for name in candidates]
        chosen += [None] * (2 - len(chosen))
        names = self._names[(protocol, key)] = (chosen[0], chosen[1])
        return names
