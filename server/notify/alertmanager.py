"""The Alertmanager client: alerts POSTed to ``/api/v2/alerts`` of every configured Alertmanager.

Each Alertmanager gets an ``AlertmanagerOutbox``: a bounded queue (Prometheus'
``--alertmanager.notification-queue-capacity``, 10,000; when full the oldest alerts are
dropped and counted) and a worker thread that posts batches of at most 256 alerts, retrying a
failed batch with backoff for ``retry_s`` (network errors, timeouts and 5xx; a 4xx is not
retried). What is sent when is decided before (``sending.py``); ``put`` never blocks the
rule evaluation. The worker logs and counts every failure and never dies of one. Counts and
logs name an Alertmanager by host and port only: its URL may carry credentials.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from functools import partial

import httpx

from server.notify.delivery import Counts, DeliveryError, deliver
from server.notify.model import Notice

_log = logging.getLogger(__name__)

QUEUE_CAPACITY = 10_000
BATCH_SIZE = 256
API_PATH = "/api/v2/alerts"


def endpoint(base_url: str) -> str:
    """Returns: the alerts endpoint of the Alertmanager at ``base_url`` (path prefix kept)."""
    return base_url.rstrip("/") + API_PATH


def display_name(base_url: str) -> str:
    """Returns: ``alertmanager/host:port``, without credentials or path."""
    url = httpx.URL(base_url)
    port = f":{url.port}" if url.port else ""
    return f"alertmanager/{url.host}{port}"


def post_alerts(
    client: httpx.Client, url: str, notices: Sequence[Notice], timeout_s: float
) -> None:
    """POST ``notices`` to ``url``. Raises: DeliveryError."""
    try:
        answer = client.post(url, json=[n.to_api() for n in notices], timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"alertmanager: {type(exc).__name__}", retryable=True) from None
    if not answer.is_success:
        raise DeliveryError(
            f"alertmanager answered {answer.status_code}: {answer.text[:200]}",
            retryable=answer.status_code >= 500,
        )


class AlertmanagerOutbox:
    """One Alertmanager's queue and sender thread."""

    def __init__(
        self,
        base_url: str,
        client: httpx.Client,
        counts: Counts,
        *,
        timeout_s: float = 10.0,
        retry_s: float = 10.0,
        capacity: int = QUEUE_CAPACITY,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.name = display_name(base_url)
        self._url = endpoint(base_url)
        self._client = client
        self._counts = counts
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._batch_size = batch_size
        self._queue: deque[Notice] = deque()
        self._capacity = capacity
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._busy = False
        self._thread: threading.Thread | None = None

    def put(self, notices: Sequence[Notice]) -> None:
        """Queue ``notices``; when the queue is full the oldest are dropped (and counted)."""
        with self._ready:
            self._queue.extend(notices)
            overflow = len(self._queue) - self._capacity
            for _ in range(max(overflow, 0)):
                self._queue.popleft()
                self._counts.count(self.name, "dropped")
            if overflow > 0:
                _log.warning("%s: queue full, dropped %d alerts", self.name, overflow)
            self._ready.notify()

    def pending(self) -> int:
        """Returns: alerts queued or being sent."""
        with self._ready:
            return len(self._queue) + (1 if self._busy else 0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"notify {self.name}", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker after it has tried what is queued (at most ``timeout_s``)."""
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _take(self) -> list[Notice] | None:
        with self._ready:
            while not self._queue and not self._stop.is_set():
                self._ready.wait()
            if not self._queue:
                return None
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            self._busy = True
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                deliver(
                    self.name,
                    partial(post_alerts, self._client, self._url, batch, self._timeout_s),
                    deadline=time.monotonic() + self._retry_s,
                    counts=self._counts,
                    stop=self._stop,
                )
            except Exception:  # noqa: BLE001 (the sender thread must survive anything)
                _log.exception("%s: unexpected error while sending; batch dropped", self.name)
                self._counts.count(self.name, "failed")
            finally:
                with self._ready:
                    self._busy = False
