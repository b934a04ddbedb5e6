"""Benchmark reports to the server: the ``Reporter`` seam, over HTTP and in memory.

Stage: agent bench runner -> (this) -> server bench API. A report is a small JSON POST to
``agent.wire.bench.BENCH_REPORT_PATH`` with the node's token, on its own short connection
(reports are rare: a few per run). Every answer is judged once, here:

- ``stored``: 2xx, the server has it.
- ``gone``: the server no longer wants reports on this request, and sending again cannot
  change that: 404 (unknown), 409/410 (already final or expired), 403 (not this node's),
  422 (the report itself is refused). The runner stops the run (if any) and forgets it.
- ``retry``: anything that may pass: no answer, a timeout, 5xx, 429, 408, 401 (a token being
  rotated). A final report is kept on disk and sent again with backoff.

The token is never logged.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from agent import __version__
from agent.transport.base import RetryableError
from agent.transport.endpoint import Endpoint, retry_after_seconds
from agent.wire.bench import BENCH_REPORT_PATH, BenchReport

Outcome = Literal["stored", "gone", "retry"]
GONE_STATUSES = frozenset({403, 404, 409, 410, 422})
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    detail: str = ""  # the server's reason, or why no answer came
    retry_after: float | None = None


class Reporter(Protocol):
    def report(self, request_id: str, report: BenchReport) -> Delivery:
        """Send one report; never raises for network or server trouble (see ``Delivery``)."""
        ...


class HttpReporter:
    """Reports over HTTP(S), one connection per report."""

    def __init__(
        self,
        server_url: str,
        token: str | Callable[[], str | None] | None,
        timeout_seconds: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._endpoint = Endpoint.parse(server_url, ssl_context)
        self._token = token
        self._timeout = timeout_seconds

    def report(self, request_id: str, report: BenchReport) -> Delivery:
        try:
            bearer = self._token() if callable(self._token) else self._token
        except RetryableError as exc:
            return Delivery("retry", f"no token yet: {exc}")
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"dcmon-agent/{__version__}",
        }
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        path = self._endpoint.prefix + BENCH_REPORT_PATH.format(request_id=request_id)
        body = report.model_dump_json(exclude_none=True).encode()
        connection = self._endpoint.connection(self._timeout)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read(MAX_ANSWER_BYTES)
            status, retry_after = response.status, response.headers.get("Retry-After")
        except (OSError, http.client.HTTPException) as exc:
            return Delivery("retry", f"cannot reach the server: {str(exc) or type(exc).__name__}")
        finally:
            connection.close()
        if 200 <= status < 300:
            return Delivery("stored")
        detail = f"{status} {_reason(raw)}".strip()
        if status in GONE_STATUSES:
            return Delivery("gone", detail)
        return Delivery("retry", detail, retry_after_seconds(retry_after))


def _reason(raw: bytes) -> str:
    try:
        document = json.loads(raw) if raw else None
    except ValueError:
        return ""
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return ""
    return f"{error.get('code', '')}: {error.get('message', '')}"


@dataclass
class MemoryReporter:
    """The in-memory twin: records reports; ``answer`` decides each delivery."""

    answer: Callable[[str, BenchReport], Delivery] = lambda request_id, report: Delivery("stored")
    reports: list[tuple[str, BenchReport]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def report(self, request_id: str, report: BenchReport) -> Delivery:
        delivery = self.answer(request_id, report)
        if delivery.outcome == "stored":
            with self._lock:
                self.reports.append((request_id, report))
        return delivery

    def states(self, request_id: str) -> list[str]:
        with self._lock:
            return [r.state for i, r in self.reports if i == request_id]
