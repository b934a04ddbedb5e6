"""The transport seam: ``Transport.send(payload) -> Ack`` and, for a backlog,
``Transport.send_many(payloads) -> [BulkResult]``.

Exception tree (every foreign error is mapped to one of these at the transport that meets it)::

    TransportError
    ├── RetryableError        anything that may pass: network trouble, timeouts, any answer
    │                         without a permanent error code (5xx, 429, a proxy's 404, a
    │                         refused token, a timestamp ahead of the server's clock ...): the
    │                         same batches are sent again later; ``retry_after`` is the
    │                         server's hint, ``status`` the HTTP status when there was one
    ├── RejectedError         single: the server refused the batch for good (an error code in
    │                         ``agent.wire.protocol.PERMANENT_CODES``): it is set aside with
    │                         the reason and never retried; bulk: the request was too large
    │                         (413), send fewer batches per request
    └── BulkUnsupportedError  the server has no usable bulk route (404/405, an older server;
                              415 or broken framing, a proxy in the way): send the batches one
                              by one
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from agent.wire.bench import BenchOrder
from agent.wire.protocol import NOT_JUDGED_STATUSES, BulkStatus
from agent.wire.schema import Ack, RefusedSeries


@dataclass(frozen=True)
class BulkResult:
    """The server's verdict on one batch of a bulk request.

    accepted / duplicate: stored (``refused``: series of it the server did not store);
    rejected: refused for good (``code`` and ``message`` say why); retry: not stored for a
    reason that may pass, so keep it and every batch after it.
    """

    status: BulkStatus
    seq: int | None = None
    samples: int = 0
    http_status: int | None = None
    code: str | None = None
    message: str | None = None
    refused: tuple[RefusedSeries, ...] = ()
    bench: BenchOrder | None = None  # the node's open benchmark order, from the answer

    @property
    def judged(self) -> bool:
        """Whether the server looked at this batch and failed on it (see ``RetryableError``)."""
        return self.http_status is not None and self.http_status not in NOT_JUDGED_STATUSES


class TransportError(Exception):
    """A batch was not delivered."""


class RetryableError(TransportError):
    """Delivery failed for a reason that may pass; try the same batch again later.

    ``status`` is the server's HTTP status, None when no answer came (network, timeout);
    ``code`` the JSON error code of the answer, "" when there was none (e.g.
    ``agent.wire.protocol.UNKNOWN_LAYOUT``: send the batch in full).
    """

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        status: int | None = None,
        code: str = "",
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.code = code

    @property
    def judged(self) -> bool:
        """Whether the server looked at the batch and failed on it: an answer other than the
        ones that say nothing about the batch (``agent.wire.protocol.NOT_JUDGED_STATUSES``).
        Only such failures count towards setting a batch aside as poison."""
        return self.status is not None and self.status not in NOT_JUDGED_STATUSES


class RejectedError(TransportError):
    """The server refused the batch itself; sending it again cannot succeed."""

    def __init__(self, message: str, status: int, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BulkUnsupportedError(TransportError):
    """The server has no bulk ingest route; deliver the batches one request each."""


class Transport(Protocol):
    """Delivers encoded batches (gzip JSON, see ``agent.wire.codec``)."""

    def send(self, payload: bytes) -> Ack:
        """Deliver one batch.

        Returns:
            The server's acknowledgement, sent only after the batch is stored.

        Raises:
            RetryableError: not delivered, try again later.
            RejectedError: refused for good.
        """
        ...

    def send_many(self, payloads: Sequence[bytes]) -> list[BulkResult]:
        """Deliver several batches in one request.

        Returns:
            One result per payload, in order.

        Raises:
            RetryableError: the request as a whole failed for a reason that may pass.
            RejectedError: the request as a whole was too large (413); none of the batches
                was judged.
            BulkUnsupportedError: the server does not offer a usable bulk route.
        """
        ...

    def close(self) -> None: ...
