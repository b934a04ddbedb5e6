"""The transport seam: ``Transport.send(payload) -> Ack`` and, for a backlog,
``Transport.send_many(payloads) -> [BulkResult]``.

Exception tree (every foreign error is mapped to one of these at the transport that meets it)::

    TransportError
    ├── RetryableError        network trouble, timeouts, 408/429/5xx, token or node name
    │                         refused: the same batches are sent again later; ``retry_after``
    │                         is the server's hint
    ├── RejectedError         the server refused the request for good (400/413/415/422 ...):
    │                         a single batch is set aside with the reason and never retried
    └── BulkUnsupportedError  the server has no bulk route (404/405, an older server): send
                              the batches one by one
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from agent.wire.schema import Ack

BulkStatus = Literal["accepted", "duplicate", "rejected", "retry"]
BULK_STATUSES: frozenset[str] = frozenset({"accepted", "duplicate", "rejected", "retry"})


@dataclass(frozen=True)
class BulkResult:
    """The server's verdict on one batch of a bulk request.

    accepted / duplicate: stored; rejected: refused for good (``code`` and ``message`` say
    why); retry: not stored for a reason that may pass, so keep it and every batch after it.
    """

    status: BulkStatus
    seq: int | None = None
    samples: int = 0
    http_status: int | None = None
    code: str | None = None
    message: str | None = None


class TransportError(Exception):
    """A batch was not delivered."""


class RetryableError(TransportError):
    """Delivery failed for a reason that may pass; try the same batch again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
            RejectedError: the request as a whole was refused (413: too large; others: the
                bulk framing itself), none of the batches was judged.
            BulkUnsupportedError: the server does not offer bulk ingest.
        """
        ...

    def close(self) -> None: ...
