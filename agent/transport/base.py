"""The transport seam: ``Transport.send(payload) -> Ack``.

Exception tree (every foreign error is mapped to one of these at the transport that meets it)::

    TransportError
    ├── RetryableError   network trouble, timeouts, 408/429/5xx, token or node name refused:
    │                    the same batch is sent again later; ``retry_after`` is the server's hint
    └── RejectedError    the server refused this batch for good (400/413/415/422 ...):
                         it is set aside with the reason and never retried
"""

from __future__ import annotations

from typing import Protocol

from agent.wire.schema import Ack


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

    def close(self) -> None: ...
