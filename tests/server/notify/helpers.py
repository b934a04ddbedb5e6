"""Shared pieces of the notification tests: notices, a recording integration, a local HTTP
server that records what is POSTed to it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from server.notify.delivery import DeliveryError
from server.notify.model import Notice, make_labels
from server.notify.receiver import Message


def notice(
    starts_at: float,
    ends_at: float | None = None,
    annotations: dict[str, str] | None = None,
    **labels: str,
) -> Notice:
    return Notice(make_labels(labels), make_labels(annotations or {}), starts_at, ends_at)


class Recorder:
    """An integration that records messages; ``failures`` makes the next attempts fail."""

    kind = "record"
    timeout_s = 1.0

    def __init__(self, *, send_resolved: bool = True) -> None:
        self.send_resolved = send_resolved
        self.messages: list[Message] = []
        self.failures = 0
        self.attempts = 0

    def notify(self, message: Message) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise DeliveryError("scripted failure", retryable=True)
        self.messages.append(message)


class Sink:
    """An HTTP server on 127.0.0.1 recording JSON bodies; ``status`` is what it answers (the
    bodies of refused requests, answered 300 or more, are only counted in ``refused``)."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.arrivals: list[float] = []  # Unix time each kept body arrived
        self.status = 200
        self.refused = 0
        self.arrived = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                status = sink.status
                with sink.arrived:
                    if status < 300:
                        sink.bodies.append(json.loads(raw or b"null"))
                        sink.arrivals.append(time.time())
                    else:
                        sink.refused += 1
                    sink.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait(self, count: int, timeout: float = 10.0) -> list[Any]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.bodies) >= count, timeout)
            return list(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
