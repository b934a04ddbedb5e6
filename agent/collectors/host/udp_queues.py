"""The ``udp_queues`` collector: bytes queued in UDP sockets, from ``/proc/net/udp{,6}``.

Input: the socket tables (a header line, then one line per socket whose fifth column is
``tx_queue:rx_queue`` in hexadecimal bytes); either may be absent when its protocol family is
off. Output, as node_exporter's udp_queues: the gauge ``node_udp_queues{ip,queue}`` with
``ip`` = ``v4``/``v6`` and ``queue`` = ``tx``/``rx``, each the sum over the table's sockets, in
bytes. A receive queue that stays high means an application reads its datagrams too slowly
(they are dropped once it reaches the socket's buffer size).
"""

from __future__ import annotations

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, read_optional

_QUEUE_COLUMN = 4
_MIN_COLUMNS = 13  # sl local rem st queues tr:when retrnsmt uid timeout inode ref pointer drops


class UdpQueuesCollector:
    """Sums the send and receive queues of the IPv4 and IPv6 UDP sockets."""

    name = "udp_queues"

    def __init__(self, paths: HostPaths) -> None:
        folder = paths.proc / "net"
        self._tables = (("v4", folder / "udp"), ("v6", folder / "udp6"))

    def collect(self, now: float) -> list[Sample]:
        """Returns: the four queue sums (bytes); those of an absent table are left out.

        Raises:
            MalformedFileError: a socket line is short or its queue column does not parse.
        """
        samples: list[Sample] = []
        for ip, path in self._tables:
            text = read_optional(path)
            if text is None:
                continue
            tx_bytes = rx_bytes = 0
            for line in text.splitlines()[1:]:
                columns = line.split()
                if not columns:
                    continue
                if len(columns) < _MIN_COLUMNS:
                    raise MalformedFileError(path, f"bad socket line {line[:80]!r}")
                tx, colon, rx = columns[_QUEUE_COLUMN].partition(":")
                if not colon:
                    raise MalformedFileError(path, f"bad queues {columns[_QUEUE_COLUMN]!r}")
                try:
                    tx_bytes += int(tx, 16)
                    rx_bytes += int(rx, 16)
                except ValueError:
                    raise MalformedFileError(
                        path, f"bad queues {columns[_QUEUE_COLUMN]!r}"
                    ) from None
            samples.append(Sample("node_udp_queues", {"ip": ip, "queue": "tx"}, float(tx_bytes)))
            samples.append(Sample("node_udp_queues", {"ip": ip, "queue": "rx"}, float(rx_bytes)))
        return samples
