"""The ``netdev`` collector: per-interface traffic counters from ``/proc/net/dev``.

Each column becomes ``node_network_{receive,transmit}_<column>_total{device}``, named from the
file's own header as node_exporter names them (``receive_bytes_total``, ``receive_errs_total``,
``receive_frame_total``, ``transmit_colls_total``, ``transmit_carrier_total``...). The header
is parsed once and reused while it stays the same.

For each interface reported, ``node_network_receive_nohandler_total{device}`` (packets the
stack dropped because no protocol handler wanted them: a VLAN or protocol nobody listens to,
or a bond's inactive slave) comes from ``/sys/class/net/<device>/statistics/rx_nohandler``
(Linux 4.6+), where node_exporter takes the same counter from netlink; an interface without
the attribute has none.
"""

from __future__ import annotations

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, parse_int, read_attribute, read_table
from agent.collectors.host.options import ExclusionFilter, HostOptions

_NOHANDLER = "node_network_receive_nohandler_total"


def column_names(header: str) -> tuple[str, ...]:
    """Returns: the metric names of the data columns, from the second header line.

    Raises:
        ValueError: the header is not ``face |<receive columns>|<transmit columns>``.
    """
    parts = header.split("|")
    if len(parts) != 3:
        raise ValueError(f"unexpected header {header!r}")
    return tuple(
        f"node_network_{direction}_{column}_total"
        for direction, columns in (("receive", parts[1]), ("transmit", parts[2]))
        for column in columns.split()
    )


class NetdevCollector:
    """Reads ``/proc/net/dev`` for every interface the exclusion pattern lets through."""

    name = "netdev"

    def __init__(self, paths: HostPaths, options: HostOptions) -> None:
        self._path = paths.proc / "net" / "dev"
        self._sys_net = f"{paths.sys}/class/net"
        self._exclude = ExclusionFilter(options.network_devices_exclude)
        self._header = ""
        self._names: tuple[str, ...] = ()

    def collect(self, now: float) -> list[Sample]:
        """Returns: every column of every interface, and its ``rx_nohandler``, as counters.

        Raises:
            MalformedFileError: the header or a line does not parse.
        """
        lines = read_table(self._path).splitlines()
        if len(lines) < 2:
            raise MalformedFileError(self._path, "missing header")
        names = self._column_names(lines[1])
        samples: list[Sample] = []
        for line in lines[2:]:
            device, colon, rest = line.partition(":")
            device = device.strip()
            if not colon or not device:
                raise MalformedFileError(self._path, f"bad line {line[:80]!r}")
            if self._exclude.excludes(device):
                continue
            values = rest.split()
            if len(values) != len(names):
                raise MalformedFileError(self._path, f"{device}: {len(values)} columns")
            try:
                for name, value in zip(names, values, strict=True):
                    samples.append(Sample(name, {"device": device}, float(int(value))))
            except ValueError:
                raise MalformedFileError(self._path, f"bad line {line[:80]!r}") from None
            nohandler = self._nohandler(device)
            if nohandler is not None:
                samples.append(Sample(_NOHANDLER, {"device": device}, nohandler))
        return samples

    def _nohandler(self, device: str) -> float | None:
        path = f"{self._sys_net}/{device}/statistics/rx_nohandler"
        text = read_attribute(path)
        return None if text is None else float(parse_int(path, text))

    def _column_names(self, header: str) -> tuple[str, ...]:
        if header != self._header:
            try:
                self._names = column_names(header)
            except ValueError as exc:
                raise MalformedFileError(self._path, str(exc)) from None
            self._header = header
        return self._names
