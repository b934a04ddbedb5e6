"""The shipper: a thread that drains the spool through the transport, oldest batch first.

Stage: spool -> transport. Collection never waits for the network: the ticking thread appends
to the spool and wakes the shipper. A retryable failure keeps the batch and backs off; a
permanent refusal sets the batch aside with the server's reason (logged, counted).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.backoff import Backoff
from agent.spool.base import Spool
from agent.transport.base import RejectedError, RetryableError, Transport

_log = logging.getLogger(__name__)
_REPEAT_WARNING_SECONDS = 300.0


@dataclass(frozen=True)
class ShipperStats:
    sent_batches_total: int
    send_failures_total: int
    rejected_batches_total: int
    consecutive_failures: int


class Shipper:
    """Delivers spooled batches on its own thread."""

    def __init__(
        self,
        spool: Spool,
        transport: Transport,
        backoff: Backoff,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spool = spool
        self._transport = transport
        self._backoff = backoff
        self._monotonic = monotonic
        self._wake = threading.Condition()
        self._stopping = False
        self._retry_at = 0.0
        self._thread: threading.Thread | None = None
        self._sent = 0
        self._failures = 0
        self._rejected = 0
        self._last_warning = -_REPEAT_WARNING_SECONDS

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dcmon-shipper", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Tell the shipper a new batch is waiting."""
        with self._wake:
            self._wake.notify()

    def stop(self, flush_timeout: float) -> int:
        """Try to deliver what is left for up to ``flush_timeout`` seconds, then stop.

        Returns:
            The number of batches still undelivered.
        """
        deadline = self._monotonic() + flush_timeout
        while self._monotonic() < deadline and self._spool.peek() is not None:
            if self._backoff.failures:
                break  # the server is away; waiting longer would only delay shutdown
            self.notify()
            time.sleep(0.05)
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, flush_timeout))
        self._transport.close()
        return self._spool.stats(self._monotonic()).batches

    def stats(self) -> ShipperStats:
        return ShipperStats(
            sent_batches_total=self._sent,
            send_failures_total=self._failures,
            rejected_batches_total=self._rejected,
            consecutive_failures=self._backoff.failures,
        )

    def deliver_once(self) -> bool:
        """Send the oldest spooled batch now (no waiting).

        Returns:
            True if a batch was delivered or set aside, False if the spool was empty or the
            send failed and should be retried later.
        """
        batch = self._spool.peek()
        if batch is None:
            return False
        try:
            ack = self._transport.send(batch.payload)
        except RetryableError as exc:
            self._failures += 1
            delay = self._backoff.next_delay(exc.retry_after)
            self._retry_at = self._monotonic() + delay
            self._warn(f"cannot deliver batch {batch.seq}, retrying in {delay:.1f}s: {exc}")
            return False
        except RejectedError as exc:
            self._rejected += 1
            self._spool.ack(batch)
            _log.error("server refused batch %d for good; it is dropped: %s", batch.seq, exc)
            return True
        self._spool.ack(batch)
        self._sent += 1
        if self._backoff.failures:
            _log.info("delivering again after %d failed attempts", self._backoff.failures)
            self._last_warning = -_REPEAT_WARNING_SECONDS
        self._backoff.reset()
        if ack.status == "duplicate":
            _log.debug("server already had batch %d", batch.seq)
        return True

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping:
                    wait = self._retry_at - self._monotonic()
                    if wait <= 0 and self._spool.peek() is not None:
                        break
                    self._wake.wait(timeout=wait if wait > 0 else None)
                if self._stopping:
                    return
            self.deliver_once()

    def _warn(self, message: str) -> None:
        """Log the first failure and then at most every few minutes while failures last."""
        now = self._monotonic()
        if self._backoff.failures == 1 or now - self._last_warning >= _REPEAT_WARNING_SECONDS:
            _log.warning(message)
            self._last_warning = now
        else:
            _log.debug(message)
