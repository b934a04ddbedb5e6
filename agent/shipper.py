"""The shipper: a thread that drains the spool through the transport, oldest batch first.

Stage: spool -> transport. Collection never waits for the network: the ticking thread appends
to the spool and wakes the shipper. A retryable failure keeps the batch and backs off; a
permanent refusal sets the batch aside (``spool/rejected/``) with the server's reason (logged,
counted). Series the server refused from a stored batch are logged once per family.

A poison batch (one the server fails on every time, say with a 500) must not hold the queue
forever, yet a server that fails on every batch (a proxy's 404, an outage) must not cost any.
So after ``poison_attempts`` failed attempts that the server answered about the oldest batch,
each attempt sends the oldest alone and, when the server fails on it again, the next batch right
after: if the server takes that one, the oldest is the problem and is set aside (logged,
counted); if it fails too, nothing is set aside and both wait. Answers that say nothing about
the batch (no answer, busy, storage away, token or name refused) never count.

The thread is supervised like the tick loop: an unexpected error is logged with its traceback,
counted (``restarts_total``), backed off, and delivery goes on.

A fresh batch with nothing before it goes out at once, alone. A backlog (after an outage or a
restart) is replayed up to ``replay_batches_per_request`` batches per bulk request, at most
``replay_requests_per_second`` requests a second, so that a fleet coming back does not flood the
server. Against a server without the bulk route (404/405) the batches go one per request, at the
same number of batches a second, and the bulk route is tried again after a while.

With ``compact`` (``agent.compact.CompactForms``), a batch sent alone goes in its compact form
when it has one, and the layout key an acknowledgement carries is handed back to it. A refusal
that may be about the form (the server does not hold the key, does not read form 2, or failed
on the batch) drops the key and sends the same batch in full at once: only the full form is
judged (backoff, poison, a refusal for good). A failure that is not about the form (no answer,
a busy or absent server, a refused token or name) would meet the full form too: it is the
batch's failure, with backoff, and the compact form waits for the next attempt. A bulk replay
always sends the full forms.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.backoff import Backoff
from agent.compact import CompactForms
from agent.spool.base import Spool, SpooledBatch
from agent.transport.base import (
    BulkResult,
    BulkUnsupportedError,
    RejectedError,
    RetryableError,
    Transport,
)
from agent.wire.bench import BenchOrder
from agent.wire.protocol import UNKNOWN_LAYOUT
from agent.wire.schema import Ack, RefusedSeries

_log = logging.getLogger(__name__)
_REPEAT_WARNING_SECONDS = 300.0
REPLAY_MAX_BYTES = 4 << 20
"""Payload bytes in one bulk request (half the server's default body limit)."""
BULK_RETRY_SECONDS = 3600.0
"""After the server turned the bulk route down, how long batches go one per request."""
POISON_ATTEMPTS = 10
"""Failed attempts the server answered about the oldest batch before a later one is tried."""
_REFUSED_FAMILIES_KEPT = 10_000


@dataclass(frozen=True)
class ShipperStats:
    sent_batches_total: int
    send_failures_total: int
    rejected_batches_total: int
    consecutive_failures: int
    poison_batches_total: int = 0
    restarts_total: int = 0
    compact_batches_total: int = 0
    """Batches delivered in their compact form."""
    compact_fallbacks_total: int = 0
    """Compact sends that failed, after which the batch was sent in full."""


class Shipper:
    """Delivers spooled batches on its own thread."""

    def __init__(
        self,
        spool: Spool,
        transport: Transport,
        backoff: Backoff,
        monotonic: Callable[[], float] = time.monotonic,
        replay_batches_per_request: int = 1,
        replay_requests_per_second: float | None = None,
        poison_attempts: int = POISON_ATTEMPTS,
        orders: Callable[[BenchOrder], None] | None = None,
        compact: CompactForms | None = None,
    ) -> None:
        """Args:
        replay_batches_per_request: batches per bulk request while a backlog waits
            (1: no bulk requests).
        replay_requests_per_second: pace of requests while a backlog waits (None: unpaced).
        poison_attempts: failed attempts the server answered about the oldest batch before
            the next batch is tried alone, to tell a poison batch from a failing server.
        orders: hears the benchmark order a push answer carries (``agent.bench.remote``);
            called on this thread, so it must not block.
        compact: the compact forms of spooled batches, and where layout keys go (None: every
            batch goes in full).
        """
        self._spool = spool
        self._transport = transport
        self._backoff = backoff
        self._monotonic = monotonic
        self._replay_limit = max(1, replay_batches_per_request)
        self._replay_rate = replay_requests_per_second
        self._bulk_off_until = float("-inf")
        self._wake = threading.Condition()
        self._stopping = False
        self._retry_at = 0.0
        self._thread: threading.Thread | None = None
        self._sent = 0
        self._failures = 0
        self._rejected = 0
        self._last_warning = -_REPEAT_WARNING_SECONDS
        self._poison_attempts = max(1, poison_attempts)
        self._suspect_seq: int | None = None  # the oldest batch, while the server fails on it
        self._suspect_failures = 0
        self._suspect_reason = ""
        self._poisoned = 0
        self._restarts = 0
        self._refused_logged: set[tuple[str, str]] = set()
        self._orders = orders
        self._compact = compact
        self._compact_sent = 0
        self._compact_fallbacks = 0

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
        while self._monotonic() < deadline and self._spool.pending():
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
        return self._spool.pending()

    def stats(self) -> ShipperStats:
        return ShipperStats(
            sent_batches_total=self._sent,
            send_failures_total=self._failures,
            rejected_batches_total=self._rejected,
            consecutive_failures=self._backoff.failures,
            poison_batches_total=self._poisoned,
            restarts_total=self._restarts,
            compact_batches_total=self._compact_sent,
            compact_fallbacks_total=self._compact_fallbacks,
        )

    @property
    def next_attempt_at(self) -> float:
        """Monotonic time before which the thread sends nothing (backoff or backlog pacing)."""
        return self._retry_at

    def deliver_once(self) -> bool:
        """Send the oldest spooled batch, or a bulk request of the oldest ones, now (no
        waiting).

        Returns:
            True if every batch sent was delivered or set aside, False if the spool was empty
            or a send failed and should be retried later.
        """
        bulk = self._replay_limit > 1 and self._monotonic() >= self._bulk_off_until
        if bulk:
            batches = self._spool.peek_many(self._replay_limit, REPLAY_MAX_BYTES)
        else:
            head = self._spool.peek()
            batches = [] if head is None else [head]
        if not batches:
            return False
        if self._suspected(batches[0]):
            done = self._send_past(batches[0])
        elif len(batches) == 1:
            done = self._send_one(batches[0])
        else:
            done = self._send_bulk(batches)
        if done:
            self._pace()
        return done

    def _send(self, batch: SpooledBatch) -> Ack:
        """Send one batch, in its compact form when it has one; a compact send that fails
        drops the layout key and the batch goes in full at once (that outcome is raised).

        Raises:
            RetryableError, RejectedError: the full form was not delivered.
        """
        compact = self._compact
        payload = None if compact is None else compact.take(batch.seq)
        if compact is not None and payload is not None:
            try:
                ack = self._transport.send(payload)
            except RetryableError as exc:
                if not (exc.code == UNKNOWN_LAYOUT or exc.judged):
                    # No answer, or one about the server (busy, away) or this node's token or
                    # name, not about the form: the full form would fare the same, so it is
                    # the batch's failure, and the compact form waits for the next attempt.
                    compact.give_back(batch.seq, payload)
                    raise
                self._fall_back(compact, batch, exc)
            except RejectedError as exc:
                self._fall_back(compact, batch, exc)
            else:
                self._compact_sent += 1
                self._learn(batch, ack)
                return ack
        ack = self._transport.send(batch.payload)
        self._learn(batch, ack)
        return ack

    def _fall_back(self, compact: CompactForms, batch: SpooledBatch, exc: Exception) -> None:
        """The server did not take a compact form: drop the key, send in full."""
        compact.forget()
        self._compact_fallbacks += 1
        _log.debug("compact batch %d not taken, sending it in full: %s", batch.seq, exc)

    def _learn(self, batch: SpooledBatch, ack: Ack) -> None:
        if ack.layout is not None and self._compact is not None:
            self._compact.learn(batch.seq, ack.layout)

    def _send_one(self, batch: SpooledBatch) -> bool:
        try:
            ack = self._send(batch)
        except RetryableError as exc:
            self._failed(f"cannot deliver batch {batch.seq}", exc.retry_after, exc)
            if exc.judged:
                self._suspect(batch, str(exc))
            return False
        except RejectedError as exc:
            self._refused(batch, str(exc))
            return True
        self._delivered(batch)
        self._order(ack.bench)
        if ack.status == "duplicate":
            _log.debug("server already had batch %d", batch.seq)
        self._note_refused(ack.refused)
        self._succeeded()
        return True

    def _suspected(self, head: SpooledBatch) -> bool:
        """Whether the server has failed on the oldest batch often enough to try past it."""
        return head.seq == self._suspect_seq and self._suspect_failures >= self._poison_attempts

    def _suspect(self, batch: SpooledBatch, reason: str) -> None:
        """Count a failure the server answered about ``batch``, the oldest one."""
        if self._suspect_seq != batch.seq:
            self._suspect_seq, self._suspect_failures = batch.seq, 0
        self._suspect_failures += 1
        self._suspect_reason = reason

    def _send_past(self, head: SpooledBatch) -> bool:
        """Send ``head`` alone and, if the server fails on it again, the batch after it: if
        that one goes through at the same moment, ``head`` is poison and is set aside."""
        later = self._spool.peek_many(2, 1 << 62)[1:]
        if not later:
            return self._send_one(head)  # nothing to compare with yet: keep trying it
        try:
            self._send_or_raise(head)
        except RetryableError as exc:
            if not exc.judged:
                self._failed(f"cannot deliver batch {head.seq}", exc.retry_after, exc)
                return False
            self._suspect(head, str(exc))
        except RejectedError as exc:
            self._refused(head, str(exc))
            return True
        else:
            self._suspect_seq, self._suspect_failures = None, 0  # it went through after all
            return True
        return self._probe_after(head, later[0])

    def _probe_after(self, head: SpooledBatch, probe: SpooledBatch) -> bool:
        """The server just failed on ``head`` again: send ``probe``, the batch after it. If
        the server judges it (stores it, or refuses it for good), it works, and ``head`` is
        poison."""
        try:
            ack = self._send(probe)
        except RetryableError as exc:
            # The server fails on the next batch too: its trouble, not the oldest batch's.
            self._failed(f"cannot deliver batches {head.seq} and {probe.seq}", exc.retry_after, exc)
            return False
        except RejectedError as exc:
            self._set_aside_poison(head, probe)
            self._refused(probe, str(exc))
            return True
        self._set_aside_poison(head, probe)
        self._delivered(probe)
        self._order(ack.bench)
        self._note_refused(ack.refused)
        self._succeeded()
        return True

    def _set_aside_poison(self, head: SpooledBatch, probe: SpooledBatch) -> None:
        self._poisoned += 1
        reason = (
            f"failed {self._suspect_failures} times while the server judged batch {probe.seq} "
            f"after it; last: {self._suspect_reason}"
        )
        _log.error(
            "server fails on batch %d every time; it is set aside (spool/rejected/): %s",
            head.seq,
            reason,
        )
        self._spool.reject(head, reason)
        self._suspect_seq, self._suspect_failures = None, 0

    def _send_or_raise(self, batch: SpooledBatch) -> None:
        """Deliver one batch; a failure is raised for the caller to judge, not handled."""
        ack = self._send(batch)
        self._delivered(batch)
        self._order(ack.bench)
        self._note_refused(ack.refused)
        self._succeeded()

    def _send_bulk(self, batches: Sequence[SpooledBatch]) -> bool:
        first, last = batches[0].seq, batches[-1].seq
        try:
            results = self._transport.send_many([batch.payload for batch in batches])
        except RetryableError as exc:
            self._failed(f"cannot deliver batches {first}..{last}", exc.retry_after, exc)
            if exc.judged:
                self._suspect(batches[0], str(exc))
            return False
        except BulkUnsupportedError as exc:
            self._bulk_off_until = self._monotonic() + BULK_RETRY_SECONDS
            _log.info("%s: sending the backlog one batch per request", exc)
            return self._send_one(batches[0])
        except RejectedError:
            # 413: the request was too large; fewer batches per request.
            self._replay_limit = max(1, len(batches) // 2)
            _log.info(
                "server found %d batches in one request too large; sending at most %d",
                len(batches),
                self._replay_limit,
            )
            return False  # the smaller request goes at once
        return self._judge(batches, results)

    def _judge(self, batches: Sequence[SpooledBatch], results: Sequence[BulkResult]) -> bool:
        """Forget what the server stored or refused for good, up to the first "retry"."""
        if results:
            self._order(results[0].bench)
        for batch, result in zip(batches, results, strict=True):
            if result.status == "retry":
                reason = f"{result.http_status or ''} {result.code or ''} {result.message or ''}"
                self._failed(f"server could not store batch {batch.seq}", None, reason.strip())
                if result.judged:
                    self._suspect(batch, reason.strip())
                return False
            if result.status == "rejected":
                self._refused(batch, f"{result.http_status} {result.code}: {result.message}")
            else:
                self._delivered(batch)
                self._note_refused(result.refused)
        self._succeeded()
        return True

    def _order(self, order: BenchOrder | None) -> None:
        """Hand a push answer's benchmark order on; a failing hand-over costs only that."""
        if order is None or self._orders is None:
            return
        try:
            self._orders(order)
        except Exception:  # noqa: BLE001 (delivery must go on whatever the runner does)
            _log.exception("could not hand over benchmark order %s", order.id)

    def _delivered(self, batch: SpooledBatch) -> None:
        self._spool.ack(batch)
        self._sent += 1

    def _refused(self, batch: SpooledBatch, reason: str) -> None:
        self._spool.reject(batch, reason)
        self._rejected += 1
        _log.error(
            "server refused batch %d for good; it is set aside (spool/rejected/): %s",
            batch.seq,
            reason,
        )

    def _note_refused(self, refused: Sequence[RefusedSeries]) -> None:
        """Log series the server refused from a stored batch: once per family and reason, not
        every tick (the same new series are refused from every batch)."""
        for item in refused:
            key = (item.metric, item.reason)
            if key in self._refused_logged:
                continue
            if len(self._refused_logged) < _REFUSED_FAMILIES_KEPT:
                self._refused_logged.add(key)
            _log.warning(
                "server stored the batch but refused %d new series of %s (%s); the family's "
                "known series and the rest of the batch are stored. Logged once per family.",
                item.series,
                item.metric,
                item.reason,
            )

    def _succeeded(self) -> None:
        if self._backoff.failures:
            _log.info("delivering again after %d failed attempts", self._backoff.failures)
            self._last_warning = -_REPEAT_WARNING_SECONDS
        self._backoff.reset()

    def _failed(self, what: str, retry_after: float | None, reason: object) -> None:
        self._failures += 1
        delay = self._backoff.next_delay(retry_after)
        self._retry_at = self._monotonic() + delay
        self._warn(f"{what}, retrying in {delay:.1f}s: {reason}")

    def _pace(self) -> None:
        """While a backlog remains, hold the next request back to the replay pace."""
        if self._replay_rate is None or not self._spool.pending():
            return
        rate = self._replay_rate
        if self._monotonic() < self._bulk_off_until:
            rate *= self._replay_limit  # one batch per request: the same batches a second
        self._retry_at = max(self._retry_at, self._monotonic() + 1.0 / rate)

    def _run(self) -> None:
        while True:
            try:
                if not self._wait_for_work():
                    return
                self.deliver_once()
            except Exception:  # noqa: BLE001 (the shipper thread's supervisor)
                self._restarted()

    def _wait_for_work(self) -> bool:
        """Returns: True when a batch is due, False when the shipper stops."""
        with self._wake:
            while not self._stopping:
                wait = self._retry_at - self._monotonic()
                if wait <= 0 and self._spool.pending():
                    return True
                self._wake.wait(timeout=wait if wait > 0 else None)
        return False

    def _restarted(self) -> None:
        """An unexpected error escaped a delivery: log it, count it, back off, go on."""
        self._restarts += 1
        delay = self._backoff.next_delay()
        self._retry_at = self._monotonic() + delay
        _log.exception(
            "shipper failed unexpectedly (%d time(s) so far); delivering again in %.1fs",
            self._restarts,
            delay,
        )

    def _warn(self, message: str) -> None:
        """Log the first failure and then at most every few minutes while failures last."""
        now = self._monotonic()
        if self._backoff.failures == 1 or now - self._last_warning >= _REPEAT_WARNING_SECONDS:
            _log.warning(message)
            self._last_warning = now
        else:
            _log.debug(message)
