"""A recording HTTP proxy between real agent processes and a real server, on 127.0.0.1.

What an agent generated is the ground truth of a delivery test, but a batch leaves the agent's
spool once acknowledged. The tap sits on the agent's path (``--server-url`` points at it),
keeps a decoded copy of every batch that goes through, single or bulk, keyed by (node id,
seq), then forwards the request unchanged and the answer back. A re-sent batch must be the
same batch: a different one under a seq already seen is recorded as a conflict. A compact batch
(values under a layout key) is recorded in its full form, rebuilt from the node's full batch of
that layout, so both forms of one batch are the same batch here. When the server
is down (killed), the tap closes the agent's connection without an answer, as a dead peer would.
"""

from __future__ import annotations

import http.client
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agent.wire.codec import WireError, decode_batch
from agent.wire.schema import Batch, CompactBatch, MetricFamily
from server.storage.layouts import layout_key

_LENGTH = struct.Struct(">I")  # bulk framing: a 4-byte big-endian length before each record
# Headers the tap's own answer sets (or that belong to one hop only), not copied through.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}
)
MAX_INFLATED_BYTES = 64 << 20


class Tap:
    """The batches seen so far: ``batches[node_id][seq]``, and any ``conflicts``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.batches: dict[str, dict[int, Batch]] = {}
        self.conflicts: list[str] = []
        self._layouts: dict[tuple[str, str], list[tuple[str, list[dict[str, str]]]]] = {}
        """(node id, layout key) -> the families (name, label sets) of a full batch."""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def of(self, node_id: str) -> dict[int, Batch]:
        """Returns: a copy of the batches seen from ``node_id``, by seq."""
        with self._lock:
            return dict(self.batches.get(node_id, {}))

    def record(self, path: str, body: bytes, content_encoding: str | None) -> None:
        if path.endswith("/bulk"):
            records = _split(body)
            encoding: str | None = "gzip"
        else:
            records, encoding = [body], content_encoding
        for record in records:
            try:
                batch = decode_batch(record, encoding, MAX_INFLATED_BYTES)
            except WireError as exc:
                with self._lock:
                    self.conflicts.append(f"an undecodable batch went to the server: {exc}")
                continue
            with self._lock:
                batch = self._full(batch)
                if batch is None:
                    continue
                seen = self.batches.setdefault(batch.node.node_id, {})
                earlier = seen.setdefault(batch.seq, batch)
                if earlier != batch:
                    self.conflicts.append(f"{batch.node.name} seq {batch.seq} sent twice, changed")

    def _full(self, batch: Batch) -> Batch | None:
        """Returns: the batch in its full form (a compact one rebuilt from its layout's full
        batch), or None after recording a conflict: a key no full batch of the node had."""
        node_id = batch.node.node_id
        if not isinstance(batch, CompactBatch):
            families = [(f.name, [labels for labels, _ in f.samples]) for f in batch.metrics]
            self._layouts[(node_id, layout_key(families))] = families
            return batch
        families = self._layouts.get((node_id, batch.layout))
        count = sum(len(labels) for _, labels in families or ())
        if families is None or count != len(batch.values):
            self.conflicts.append(f"{batch.node.name} seq {batch.seq}: compact, no such layout")
            return None
        values = iter(batch.values)
        metrics = [
            MetricFamily.model_construct(name=name, samples=[(lab, next(values)) for lab in labels])
            for name, labels in families
        ]
        fields = {name: getattr(batch, name) for name in Batch.model_fields}
        return Batch.model_construct(**{**fields, "schema_version": 1, "metrics": metrics})


def _split(body: bytes) -> list[bytes]:
    records, offset = [], 0
    while offset < len(body):
        (size,) = _LENGTH.unpack_from(body, offset)
        offset += _LENGTH.size
        records.append(body[offset : offset + size])
        offset += size
    return records


def _handler(tap: Tap) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test's own output says what matters."""

        def do_GET(self) -> None:
            self._forward(b"")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path.startswith("/api/v1/ingest"):
                tap.record(self.path, body, self.headers.get("Content-Encoding"))
            self._forward(body)

        def _forward(self, body: bytes) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream = http.client.HTTPConnection("127.0.0.1", tap.upstream_port, timeout=60)
            try:
                upstream.request(self.command, self.path, body or None, headers)
                response = upstream.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException):
                self.close_connection = True  # the server is away: so is the answer
                return
            finally:
                upstream.close()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler


@contextmanager
def tapping(upstream_port: int) -> Iterator[Tap]:
    """A running tap in front of the server on ``upstream_port``; stopped on leaving."""
    tap = Tap(upstream_port)
    tap.start()
    try:
        yield tap
    finally:
        tap.stop()
