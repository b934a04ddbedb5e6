"""An in-memory transport: hands each payload to a function (tests, embedding, dry runs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agent.transport.base import BulkResult, RejectedError, RetryableError
from agent.wire.schema import Ack


class MemoryTransport:
    """Calls ``handler(payload)`` for each batch; the handler returns an Ack or raises.

    ``send_many`` calls ``bulk(payloads)`` when given; otherwise it judges the payloads one by
    one with ``handler``, as a server judges the records of a bulk request: an Ack becomes
    accepted/duplicate, a ``RejectedError`` rejected, and the first ``RetryableError`` makes
    that batch and the ones after it "retry" (they are not handed to ``handler``).
    """

    def __init__(
        self,
        handler: Callable[[bytes], Ack],
        bulk: Callable[[Sequence[bytes]], list[BulkResult]] | None = None,
    ) -> None:
        self._handler = handler
        self._bulk = bulk
        self.sent: list[bytes] = []
        self.requests = 0
        """Requests made: one per ``send``, one per ``send_many``."""

    def send(self, payload: bytes) -> Ack:
        self.requests += 1
        ack = self._handler(payload)
        self.sent.append(payload)
        return ack

    def send_many(self, payloads: Sequence[bytes]) -> list[BulkResult]:
        self.requests += 1
        if self._bulk is not None:
            return self._bulk(payloads)
        results: list[BulkResult] = []
        for payload in payloads:
            if results and results[-1].status == "retry":
                results.append(BulkResult("retry", message="not attempted"))
                continue
            try:
                ack = self._handler(payload)
            except RetryableError as exc:
                results.append(BulkResult("retry", message=str(exc)))
                continue
            except RejectedError as exc:
                results.append(BulkResult("rejected", None, 0, exc.status, exc.code, str(exc)))
                continue
            self.sent.append(payload)
            results.append(BulkResult(ack.status, ack.seq, ack.samples))
        return results

    def close(self) -> None:
        """Nothing to release."""
