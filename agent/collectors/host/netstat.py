"""The ``netstat`` collector: protocol counters from ``/proc/net/{netstat,snmp,snmp6}``.

Input: ``netstat`` and ``snmp`` (pairs of lines, ``Proto: Field Field...`` then
``Proto: value value...``; both required) and ``snmp6`` (``Ip6InOctets  128`` one per line,
the protocol being the name up to its first ``6``; absent when IPv6 is off). Output: one
``node_netstat_<Proto>_<Field>`` per field node_exporter's current default
``--collector.netstat.fields`` selects (TCP retransmits, resets, listen drops, SYN cookies,
out-of-order queueing, UDP buffer errors, every protocol's ``InErrors``, IP octets, ...).

Like node_exporter the families are exposed ``untyped``; the catalog marks the counters
monotonic and the two gauges (``Ip_Forwarding``, 1 forwarding / 2 not, and ``Tcp_CurrEstab``)
not, so the server still knows which to treat as counters. Of the selected fields only those
the catalog lists are emitted; a selected field the catalog does not list (a newer kernel's) is
logged once at debug level. Each header line is parsed once and its selection reused while it
stays the same; ``snmp6``'s line positions are remembered the same way. Values of fields that
are not selected are not parsed.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import NamedTuple

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, read_optional, read_table
from agent.wire.catalog import Catalog, default_catalog

logger = logging.getLogger(__name__)

DEFAULT_FIELDS = (
    r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)"
    r"|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)"
    r"|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)"
    r"|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$"
)
"""node_exporter's default ``--collector.netstat.fields`` (1.9 and later)."""

_PREFIX = "node_netstat_"
# Distinct header lines remembered; IcmpMsg's header grows as new ICMP types are seen.
_HEADER_CACHE_LIMIT = 64


class _Selection(NamedTuple):
    """What one header line of ``netstat``/``snmp`` selects."""

    protocol: str  # with its colon, as the values line starts
    width: int  # tokens on the line, the protocol included
    columns: tuple[tuple[int, str], ...]  # (token index, metric name)


class _Snmp6Layout(NamedTuple):
    """Where the selected fields of ``snmp6`` were: valid while the file keeps its shape."""

    lines: int
    rows: tuple[tuple[int, str, str], ...]  # (line index, field as written, metric name)


class NetstatCollector:
    """Reads the three protocol statistics files and keeps node_exporter's default fields."""

    name = "netstat"

    def __init__(self, paths: HostPaths, catalog: Catalog | None = None) -> None:
        folder = paths.proc / "net"
        self._netstat = folder / "netstat"
        self._snmp = folder / "snmp"
        self._snmp6 = folder / "snmp6"
        self._fields = re.compile(DEFAULT_FIELDS)
        listed = (catalog or default_catalog()).from_source(self.name)
        # Proto_Field -> metric name, for the catalog's fields that the default set selects.
        self._metric_for = {
            spec.name[len(_PREFIX) :]: spec.name
            for spec in listed
            if spec.name.startswith(_PREFIX) and self._fields.search(spec.name[len(_PREFIX) :])
        }
        self._selections: dict[str, _Selection] = {}
        self._snmp6_layout: _Snmp6Layout | None = None
        self._passed_over: set[str] = set()

    def collect(self, now: float) -> list[Sample]:
        """Returns: one sample per selected field present, in file order.

        Raises:
            MalformedFileError: a file does not parse (a header without its values line,
                a values line of another width, a selected value that is not an integer).
            OSError: ``netstat`` or ``snmp`` cannot be read.
        """
        samples: list[Sample] = []
        self._paired(self._netstat, read_table(self._netstat), samples)
        self._paired(self._snmp, read_table(self._snmp), samples)
        text = read_optional(self._snmp6)
        if text is not None:
            self._rows(text, samples)
        return samples

    def _paired(self, path: Path, text: str, samples: list[Sample]) -> None:
        lines = text.splitlines()
        if len(lines) % 2:
            raise MalformedFileError(path, f"{len(lines)} lines: a header without its values")
        for index in range(0, len(lines), 2):
            header = lines[index]
            selection = self._selections.get(header)
            if selection is None:
                selection = self._select(path, header)
            line = lines[index + 1]
            if not selection.columns:
                # Nothing selected (MPTcpExt, IcmpMsg): only the shape is checked, unsplit.
                if line.startswith(selection.protocol) and line.count(" ") + 1 == selection.width:
                    continue
                raise MalformedFileError(path, f"{selection.protocol} values do not fit its header")
            values = line.split()
            if len(values) != selection.width or values[0] != selection.protocol:
                raise MalformedFileError(path, f"{selection.protocol} values do not fit its header")
            try:
                for column, metric in selection.columns:
                    samples.append(Sample(metric, {}, float(int(values[column]))))
            except ValueError:
                raise MalformedFileError(path, f"bad {selection.protocol} values") from None

    def _select(self, path: Path, header: str) -> _Selection:
        tokens = header.split()
        if len(tokens) < 2 or not tokens[0].endswith(":"):
            raise MalformedFileError(path, f"bad header {header[:60]!r}")
        protocol = tokens[0][:-1]
        columns = tuple(
            (column, metric)
            for column, field in enumerate(tokens[1:], start=1)
            if (metric := self._chosen(f"{protocol}_{field}")) is not None
        )
        if len(self._selections) >= _HEADER_CACHE_LIMIT:
            self._selections.clear()
        selection = self._selections[header] = _Selection(tokens[0], len(tokens), columns)
        return selection

    def _rows(self, text: str, samples: list[Sample]) -> None:
        lines = text.splitlines()
        layout = self._snmp6_layout
        if layout is None or layout.lines != len(lines):
            layout = self._layout(lines)
        values: list[tuple[str, str]] = []
        for index, field, metric in layout.rows:
            parts = lines[index].split()
            if len(parts) != 2 or parts[0] != field:
                # The kernel's field list changed shape under the same line count.
                layout = self._layout(lines)
                values = [(metric, lines[row].split()[1]) for row, _, metric in layout.rows]
                break
            values.append((metric, parts[1]))
        try:
            samples.extend(Sample(metric, {}, float(int(value))) for metric, value in values)
        except ValueError:
            raise MalformedFileError(self._snmp6, "a selected value is not an integer") from None

    def _layout(self, lines: list[str]) -> _Snmp6Layout:
        rows: list[tuple[int, str, str]] = []
        for index, line in enumerate(lines):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise MalformedFileError(self._snmp6, f"bad line {line[:60]!r}")
            field = parts[0]
            six = field.find("6")
            if six < 0:
                continue  # node_exporter skips names without a protocol ending in 6
            metric = self._chosen(f"{field[: six + 1]}_{field[six + 1 :]}")
            if metric is not None:
                rows.append((index, field, metric))
        self._snmp6_layout = _Snmp6Layout(len(lines), tuple(rows))
        return self._snmp6_layout

    def _chosen(self, key: str) -> str | None:
        """Returns: the metric for ``Proto_Field``, or None when it is not emitted."""
        metric = self._metric_for.get(key)
        if metric is None and key not in self._passed_over:
            self._passed_over.add(key)
            if self._fields.search(key):
                logger.debug("netstat field %r is not in the catalog; skipped", key)
        return metric
